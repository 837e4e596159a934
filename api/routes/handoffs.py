"""The team's side of a hand-off: open hand-offs, replying as the team, giving the conversation
back to the bot. Behind ADMIN_TOKEN, like the inspector."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep
from api.errors import ApiError
from api.routes.admin import ADMIN, ERRORS
from api.schemas import MAX_MESSAGE_CHARS, MessageOut
from store import feedback, handoffs, messages
from store.handoffs import HandoffClosed, HandoffNotFound, StoredHandoff

router = APIRouter(prefix="/admin", tags=["hand-off"], dependencies=ADMIN, responses=ERRORS)


class TeamReply(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    author: str | None = Field(default=None, max_length=100, description="Shown to the user")


class Release(BaseModel):
    released_by: str | None = Field(default=None, max_length=100)


class HandoffDetail(BaseModel):
    handoff: StoredHandoff
    conversation_status: Literal["active", "waiting_for_human"]
    messages: list[MessageOut]


def _not_found() -> ApiError:
    return ApiError(404, "handoff_not_found", "Ce transfert n'existe pas.")


def _handoff_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise _not_found() from None


@router.get("/handoffs")
async def list_handoffs(
    services: ServicesDep,
    status: Literal["open", "released", "all"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[StoredHandoff]:
    """Hand-offs, newest first (open ones by default)."""
    return await handoffs.list_handoffs(services.pool, None if status == "all" else status, limit)


@router.get("/handoffs/{handoff_id}")
async def handoff_detail(handoff_id: str, services: ServicesDep) -> HandoffDetail:
    """A hand-off with the whole conversation, for the person taking it."""
    handoff = await handoffs.get_handoff(services.pool, _handoff_id(handoff_id))
    if handoff is None:
        raise _not_found()
    rows = await messages.list_messages(services.pool, handoff.conversation_id)
    ratings = await feedback.ratings_of(services.pool, handoff.conversation_id)
    status = await handoffs.conversation_status(services.pool, handoff.conversation_id)
    return HandoffDetail(
        handoff=handoff,
        conversation_status=status or "active",
        messages=[MessageOut.of(row, ratings.get(row.id)) for row in rows],
    )


@router.post("/handoffs/{handoff_id}/messages", status_code=201)
async def reply(handoff_id: str, body: TeamReply, services: ServicesDep) -> MessageOut:
    """Answer the user as the team; the widget shows it, and the history keeps it."""
    try:
        stored = await services.handoffs.reply(_handoff_id(handoff_id), body.content, body.author)
    except HandoffNotFound as exc:
        raise _not_found() from exc
    except HandoffClosed as exc:
        raise ApiError(
            409,
            "handoff_released",
            "Ce transfert est clos : la conversation est revenue au bot.",
        ) from exc
    return MessageOut.of(stored)


@router.post("/handoffs/{handoff_id}/release")
async def release(
    handoff_id: str, services: ServicesDep, body: Release | None = None
) -> StoredHandoff:
    """Give the conversation back to the bot; the user's next message is routed again.
    Releasing a released hand-off returns it unchanged."""
    try:
        return await services.handoffs.release(
            _handoff_id(handoff_id), body.released_by if body else None
        )
    except HandoffNotFound as exc:
        raise _not_found() from exc
