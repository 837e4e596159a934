"""Developer tools over HTTP: runs, checkpoints, replay, the graph drawing and the inspector.

Mounted only when ADMIN_TOKEN is set; every route wants `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.errors import ApiError
from api.schemas import MAX_MESSAGE_CHARS, ErrorResponse
from devtools import timetravel
from devtools.drawing import draw_png, mermaid
from store.analytics import ConversationSummary, recent_conversations

STATIC = Path(__file__).resolve().parent.parent / "static"


async def require_admin(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    """401 unless the bearer token is ADMIN_TOKEN (compared in constant time)."""
    expected = request.app.state.services.settings.admin_token
    given = (authorization or "").removeprefix("Bearer ").strip()
    if expected is None or not secrets.compare_digest(given, expected.get_secret_value()):
        raise ApiError(401, "unauthorized", "Jeton d'administration manquant ou invalide.")


ADMIN = [Depends(require_admin)]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
}

router = APIRouter(tags=["developer tools"], responses=ERRORS)


class ReplayRequest(BaseModel):
    checkpoint_id: str = Field(min_length=1)
    message: str | None = Field(default=None, min_length=1, max_length=MAX_MESSAGE_CHARS)
    model: str | None = None


@router.get("/admin/conversations", dependencies=ADMIN)
async def conversations(services: ServicesDep, limit: int = 50) -> list[ConversationSummary]:
    """The most recently active conversations."""
    return await recent_conversations(services.pool, min(max(limit, 1), 500))


@router.get("/conversations/{conversation_id}/runs", dependencies=ADMIN)
async def runs(conversation_id: str, services: ServicesDep) -> list[timetravel.CheckpointLine]:
    """Every checkpoint of the conversation, oldest first, with the node runs behind it."""
    lines = await timetravel.checkpoints(services, conversation_id)
    if not lines:
        raise ApiError(404, "conversation_not_found", "Aucun checkpoint pour cette conversation.")
    return lines


@router.get("/conversations/{conversation_id}/checkpoints/{checkpoint_id}", dependencies=ADMIN)
async def checkpoint(
    conversation_id: str, checkpoint_id: str, services: ServicesDep
) -> dict[str, Any]:
    """The state at a checkpoint."""
    try:
        return await timetravel.state_at(services, conversation_id, checkpoint_id)
    except timetravel.CheckpointNotFound as exc:
        raise ApiError(404, "checkpoint_not_found", "Ce checkpoint n'existe pas.") from exc


@router.post("/conversations/{conversation_id}/replay", dependencies=ADMIN)
async def replay(
    conversation_id: str, body: ReplayRequest, services: ServicesDep
) -> timetravel.ReplayResult:
    """Re-run from a checkpoint on a fork; the conversation itself is untouched."""
    try:
        return await timetravel.replay(
            services, conversation_id, body.checkpoint_id, body.message, body.model
        )
    except timetravel.CheckpointNotFound as exc:
        raise ApiError(404, "checkpoint_not_found", "Ce checkpoint n'existe pas.") from exc
    except timetravel.ReplayRefused as exc:
        raise ApiError(422, "replay_refused", str(exc)) from exc


@router.get("/admin/graph.mmd", dependencies=ADMIN, response_class=PlainTextResponse)
async def graph_mermaid(services: ServicesDep) -> str:
    return mermaid(services.graph)


@router.get(
    "/admin/graph.png",
    dependencies=ADMIN,
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def graph_png(services: ServicesDep) -> Response:
    """The graph drawn offline (no mermaid.ink)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "graph.png"
        await asyncio.to_thread(draw_png, services.graph, path)
        return Response(content=path.read_bytes(), media_type="image/png")


page = APIRouter(include_in_schema=False)


@page.get("/inspector", response_class=HTMLResponse)
async def inspector() -> str:
    """The inspector page; it asks for the token and sends it with every API call."""
    return (STATIC / "inspector.html").read_text(encoding="utf-8")
