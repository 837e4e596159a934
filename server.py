"""The HTTP server: builds the services once, mounts the routes. Nothing else lives here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.limits import BodySizeLimit
from api.routes import admin, chat, conversations, feedback, handoffs, health, metrics, widget
from core.memory import settle_heap
from core.metrics import share_between_workers
from core.settings import Settings, get_settings
from services import open_services


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app. All API routes sit under /api so nginx's `/api/v2/` -> `/api/` works."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            settle_heap()
            yield

    app = FastAPI(
        title="Chatbot L'Agence des Copines — API v2",
        version="2.0.0",
        description="Audrey (marketing automation) and Carole (content creation), with escalation "
        "to a person. Embedded mode composes answers from the knowledge base without an LLM.",
        lifespan=lifespan,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        expose_headers=["Retry-After"],
    )
    # Outermost: an oversized body is refused before anything reads it.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    errors.install(app)
    api = APIRouter(prefix="/api")
    api.include_router(chat.router)
    api.include_router(conversations.router)
    api.include_router(health.router)  # /api/health, same as /health
    api.include_router(health.analytics_router)
    api.include_router(feedback.router)
    api.include_router(widget.script, include_in_schema=False)  # /api/widget.js, via nginx
    if settings.admin_token is not None:
        api.include_router(admin.router)
        api.include_router(handoffs.router)
        api.include_router(feedback.admin_router)
        app.include_router(admin.page)
    app.include_router(api)
    app.include_router(health.router, include_in_schema=False)  # /health, as nginx expects
    app.include_router(metrics.router)
    app.include_router(widget.script, include_in_schema=False)  # /widget.js
    app.include_router(widget.demo, include_in_schema=False)  # / (the widget's demo page)
    return app


@asynccontextmanager
async def serve_in_background(settings: Settings, port: int) -> AsyncIterator[str]:
    """Run the app under uvicorn on 127.0.0.1:`port` inside this event loop; yields its URL.

    For the end-to-end tests and the benchmark, which need a real HTTP server they can stop
    and start again.
    """
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    # uvicorn only exposes `started` as a flag, so poll it.
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error
            raise RuntimeError("uvicorn exited during start-up")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _prepare(settings: Settings) -> None:
    """Start the embedded database, migrate and ingest once, before workers fork."""
    async with open_services(settings):
        pass


def main() -> None:
    """Serve with uvicorn on HOST:PORT, with WORKERS processes.

    With several workers the parent prepares the database first (embedded server, migrations,
    first ingestion), so the workers start on a ready database; each worker then opens its own
    pool and providers. Turn order, rate limits and leases live in Postgres, so any worker can
    serve any request.
    """
    import uvicorn

    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        asyncio.run(_prepare(settings))
        share_between_workers(settings.data_dir / "metrics")  # /metrics sums every worker
        uvicorn.run(
            "server:create_app",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )
        return
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level
    )
