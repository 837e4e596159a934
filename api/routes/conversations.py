"""A conversation's history, for the widget to redraw itself."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from api.deps import ServicesDep, verify_user
from api.errors import ApiError
from api.routes.chat import CONVERSATION_NOT_FOUND
from api.schemas import (
    HISTORY_PAGE_MAX,
    IDENTIFIER,
    USER_TOKEN,
    ErrorResponse,
    HistoryResponse,
    MessageOut,
)
from store import feedback, handoffs, messages

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.get(
    "/{conversation_id}/messages",
    responses={401: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def history(
    conversation_id: Annotated[str, Path(pattern=IDENTIFIER)],
    user_id: Annotated[str, Query(pattern=IDENTIFIER, description="The conversation's owner")],
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE_MAX)] = 50,
    before: Annotated[UUID | None, Query(description="`next_before` of the later page")] = None,
    user_token: Annotated[str | None, Query(pattern=USER_TOKEN)] = None,
) -> HistoryResponse:
    """The latest `limit` messages in conversation order (each answer after its question);
    `before` pages further back. Only the conversation's owner may read it: anyone else gets
    the same 404 as for a conversation that does not exist."""
    verify_user(services, user_id, user_token)
    owner = await messages.conversation_owner(services.pool, conversation_id)
    if owner is None or owner != user_id:
        raise ApiError(404, *CONVERSATION_NOT_FOUND)
    rows = await messages.list_messages(services.pool, conversation_id, limit + 1, before)
    more = len(rows) > limit
    rows = rows[1:] if more else rows
    ratings = await feedback.ratings_of(services.pool, conversation_id)
    status = await handoffs.conversation_status(services.pool, conversation_id)
    return HistoryResponse(
        conversation_id=conversation_id,
        status=status or "active",
        messages=[MessageOut.of(row, ratings.get(row.id)) for row in rows],
        next_before=str(rows[0].id) if more and rows else None,
    )
