"""The embeddable chat widget (`/widget.js`, plain JS, no build step) and its demo page (`/`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

script = APIRouter(tags=["widget"])
demo = APIRouter(tags=["widget"])


@script.get("/widget.js", response_class=FileResponse)
async def widget_js() -> FileResponse:
    """The widget; a host page embeds it with `<script src=".../widget.js" defer></script>`."""
    return FileResponse(
        STATIC / "widget.js",
        media_type="text/javascript; charset=utf-8",
        # Short, so a rollback (data-v2-percentage stays on the page, the script changes) spreads
        # within minutes; the ETag makes revalidation cheap.
        headers={"Cache-Control": "public, max-age=300"},
    )


@demo.get("/", response_class=FileResponse)
async def demo_page() -> FileResponse:
    """A page that embeds the widget, to try it against this server."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")
