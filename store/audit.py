"""Queries the consistency audit reads (`devtools/audit.py`): what the messages table says."""

from __future__ import annotations

from typing import Any

from store.messages import ORDERED
from store.postgres import Pool


async def status_counts(pool: Pool) -> dict[str, int]:
    """User rows per status (v2 rows: those with a reply id)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select status, count(*) as n from messages "
            "where role = 'user' and reply_id is not null group by status"
        )
        return {row["status"]: int(row["n"]) for row in await cur.fetchall()}


async def stuck_turns(pool: Pool) -> list[dict[str, Any]]:
    """User rows still waiting or running, and drafts left behind."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select id, conversation_id, status, lease_expires_at from messages "
            "where role = 'user' and status in ('received', 'running') "
            "union all select message_id, conversation_id, 'draft', updated_at from answer_drafts"
        )
        return [dict(row) for row in await cur.fetchall()]


async def orphan_answers(pool: Pool) -> list[dict[str, Any]]:
    """Assistant rows of v2 turns that answer no user row (or answer a rejected one)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select a.id, a.conversation_id from messages a "
            "where a.role = 'assistant' and a.agent is not null and not exists ("
            "  select 1 from messages u where u.reply_id = a.id and u.role = 'user' "
            "  and u.status <> 'rejected')"
        )
        return [dict(row) for row in await cur.fetchall()]


async def answered_without_answer(pool: Pool) -> list[dict[str, Any]]:
    """User rows marked answered whose answer row is missing (a message kept for the team is
    answered by its acknowledgement, a `notice`)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select u.id, u.conversation_id from messages u where u.role = 'user' "
            "and u.status = 'answered' and not exists (select 1 from messages a "
            "where a.id = u.reply_id and a.role in ('assistant', 'notice'))"
        )
        return [dict(row) for row in await cur.fetchall()]


async def conversation_ids(pool: Pool) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute("select id from conversations order by id")
        return [str(row["id"]) for row in await cur.fetchall()]


async def ordered_messages(pool: Pool, conversation_id: str) -> list[dict[str, Any]]:
    """A conversation's rows in conversation order, with what the audit compares; `held`: a
    user message kept for the team while a person had the conversation (never in the graph)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select id, role, content, status, exists (select 1 from messages u "
            "  join messages a on a.id = u.reply_id and a.role = 'notice' where u.id = t.id) "
            f"as held from ({ORDERED}) t "
            "order by turn_seq, turn_rank, id".encode(),
            (conversation_id,),
        )
        return [dict(row) for row in await cur.fetchall()]
