"""A conversation's history, for the widget to redraw itself."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ServicesDep
from api.errors import ApiError
from api.schemas import IDENTIFIER, ErrorResponse, HistoryResponse, MessageOut
from store import messages

router = APIRouter(prefix="/conversations", tags=["conversations"])


@router.get(
    "/{conversation_id}/messages",
    responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def history(
    conversation_id: Annotated[str, Path(pattern=IDENTIFIER)],
    user_id: Annotated[str, Query(pattern=IDENTIFIER, description="The conversation's owner")],
    services: ServicesDep,
) -> HistoryResponse:
    """Messages oldest first; only the user who owns the conversation may read it."""
    owner = await messages.conversation_owner(services.pool, conversation_id)
    if owner is None:
        raise ApiError(404, "conversation_not_found", "Cette conversation n'existe pas.")
    if owner != user_id:
        raise ApiError(
            403, "conversation_forbidden", "Cette conversation appartient à un autre utilisateur."
        )
    rows = await messages.list_messages(services.pool, conversation_id)
    return HistoryResponse(
        conversation_id=conversation_id,
        messages=[
            MessageOut(
                id=str(row.id),
                role=row.role,
                content=row.content,
                agent=row.agent,
                status=row.status,
                created_at=row.created_at,
            )
            for row in rows
        ],
    )
