"""Thumbs up or down on an answer, from the widget; and the ratings, for the operator."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query

from api.deps import ServicesDep, verify_user
from api.errors import ApiError
from api.routes.admin import ADMIN, ERRORS
from api.schemas import ErrorResponse, FeedbackRequest, FeedbackResponse
from store import feedback
from store.feedback import FeedbackLine

router = APIRouter(prefix="/messages", tags=["feedback"])
admin_router = APIRouter(prefix="/admin", tags=["feedback"], dependencies=ADMIN, responses=ERRORS)


def _not_found() -> ApiError:
    return ApiError(404, "message_not_found", "Cette réponse n'existe pas.")


@router.post(
    "/{message_id}/feedback",
    responses={
        401: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
)
async def rate(message_id: str, body: FeedbackRequest, services: ServicesDep) -> FeedbackResponse:
    """Rate an answer of your own conversation; sending again replaces the rating (one per
    answer). 404 for an unknown answer and for someone else's, so ids cannot be probed."""
    verify_user(services, body.user_id, body.user_token)
    try:
        answer_id = UUID(message_id)
    except ValueError:
        raise _not_found() from None
    stored = await feedback.save_feedback(
        services.pool,
        message_id=answer_id,
        user_id=body.user_id,
        rating=body.rating,
        comment=body.comment or None,
    )
    if stored is None:
        raise _not_found()
    return FeedbackResponse(
        message_id=str(stored.message_id),
        rating=stored.rating,
        comment=stored.comment,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


@admin_router.get("/feedback")
async def recent_feedback(
    services: ServicesDep,
    rating: Literal["up", "down"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[FeedbackLine]:
    """The latest ratings with the rated answer and the user's comment, newest first."""
    return await feedback.recent_feedback(services.pool, limit, rating)
