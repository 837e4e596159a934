"""`answer_drafts`: the answer being streamed, flushed every second or so, so that another
worker can resume the stream and a crash keeps what was said."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from store.postgres import Pool


class Draft(BaseModel):
    """What a turn has streamed so far."""

    message_id: UUID
    user_message_id: UUID
    conversation_id: str
    agent: str | None = None
    route: dict[str, Any] | None = None
    sources: list[dict[str, Any]] | None = None
    degraded: bool = False
    content: str = ""
    model: str | None = None


# The user row is share-locked: a turn ending at the same moment (its row updated, its draft
# deleted, in one transaction) either waits for this write and then deletes it, or commits
# first and this write sees the turn ended and writes nothing.
_UPSERT = (
    "insert into answer_drafts (message_id, user_message_id, conversation_id, agent, "
    "route, sources, degraded, content, model, updated_at) "
    "select %s, %s, %s, %s, %s, %s, %s, %s, %s, now() "
    "where exists (select 1 from messages m where m.id = %s "
    "  and m.status in ('received', 'running') for share) "
    "on conflict (message_id) do update set agent = excluded.agent, "
    "route = excluded.route, sources = excluded.sources, degraded = excluded.degraded, "
    "content = excluded.content, model = excluded.model, updated_at = now()"
)


def _params(draft: Draft) -> tuple[Any, ...]:
    return (
        draft.message_id,
        draft.user_message_id,
        draft.conversation_id,
        draft.agent,
        Jsonb(draft.route) if draft.route is not None else None,
        Jsonb(draft.sources) if draft.sources is not None else None,
        draft.degraded,
        draft.content,
        draft.model,
        draft.user_message_id,
    )


async def save_many(pool: Pool, many: Sequence[Draft]) -> None:
    """Write the drafts as they stand, in one pipeline (one round trip), each unless its turn
    has ended meanwhile: a late write must not leave a draft behind."""
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(_UPSERT, [_params(draft) for draft in many])


async def get(pool: Pool, message_id: UUID) -> Draft | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select message_id, user_message_id, conversation_id, agent, route, sources, "
            "degraded, content, model from answer_drafts where message_id = %s",
            (message_id,),
        )
        row = await cur.fetchone()
    return None if row is None else Draft.model_validate(row)
