"""Users' ratings of the answers they were given (migration 006): one per answer, replaceable."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel

from store.postgres import Pool

Rating = Literal["up", "down"]

RATED_ROLES = ("assistant", "human_agent")
"""What can be rated: the bot's answers and the team's replies, not notices or user messages."""


class StoredFeedback(BaseModel):
    message_id: UUID
    conversation_id: str
    rating: Rating
    comment: str | None
    created_at: datetime
    updated_at: datetime


class FeedbackLine(StoredFeedback):
    """A rating with what was rated, for the operator."""

    user_id: str
    agent: str | None
    role: str
    answer: str


async def save_feedback(
    pool: Pool, *, message_id: UUID, user_id: str, rating: Rating, comment: str | None
) -> StoredFeedback | None:
    """Rate an answer of the user's own conversation; None when there is no such answer.

    One statement: the ownership check and the upsert cannot be separated by another request.
    Sending the same rating again changes nothing; another rating or comment replaces it.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            "insert into feedback (message_id, conversation_id, user_id, rating, comment) "
            "select m.id, m.conversation_id, c.user_id, %s, %s from messages m "
            "join conversations c on c.id = m.conversation_id "
            "where m.id = %s and c.user_id = %s and m.role = any(%s) "
            "on conflict (message_id) do update set rating = excluded.rating, "
            "comment = excluded.comment, "
            "updated_at = case when (feedback.rating, feedback.comment) is not distinct from "
            "(excluded.rating, excluded.comment) then feedback.updated_at else now() end "
            "returning message_id, conversation_id, rating, comment, created_at, updated_at",
            (rating, comment, message_id, user_id, list(RATED_ROLES)),
        )
        row = await cur.fetchone()
    return None if row is None else StoredFeedback.model_validate(row)


async def ratings_of(pool: Pool, conversation_id: str) -> dict[UUID, Rating]:
    """The ratings given in a conversation, by message id (for the widget's history)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select message_id, rating from feedback where conversation_id = %s",
            (conversation_id,),
        )
        rows = await cur.fetchall()
    return {row["message_id"]: row["rating"] for row in rows}


async def recent_feedback(
    pool: Pool, limit: int, rating: Rating | None = None
) -> list[FeedbackLine]:
    """The latest ratings with the rated answer, newest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select f.message_id, f.conversation_id, f.user_id, f.rating, f.comment, "
            "f.created_at, f.updated_at, m.agent, m.role, m.content as answer "
            "from feedback f join messages m on m.id = f.message_id "
            "where (%s::text is null or f.rating = %s) "
            "order by f.updated_at desc limit %s",
            (rating, rating, limit),
        )
        rows = await cur.fetchall()
    return [FeedbackLine.model_validate(row) for row in rows]
