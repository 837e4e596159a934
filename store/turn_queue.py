"""One turn at a time per conversation: a queue of user messages with leases, in Postgres.

A user message is `received` while it waits and `running` while it is answered; the worker that
handles it renews `lease_expires_at` every few seconds. A message may start when no other live
message of its conversation is running and none that arrived before it is still waiting. Every
check runs under the conversation row's lock in one short transaction, so it is exact across
workers and machines, holds no connection while waiting, and needs no session state (it works
through Supabase's transaction pooler). A worker killed with `kill -9` stops renewing: its
messages stop blocking the conversation when their lease expires.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from store.postgres import Pool

StartOutcome = Literal["started", "waiting", "gone"]


async def try_start(
    pool: Pool, *, message_id: UUID, conversation_id: str, seq: int, lease_seconds: float
) -> StartOutcome:
    """Start the message's turn if it is next; `gone` if it is no longer pending (swept)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "select 1 from conversations where id = %s for update", (conversation_id,)
        )
        cur = await conn.execute(
            "update messages set status = 'running', "
            "lease_expires_at = now() + make_interval(secs => %s) "
            "where id = %s and status = 'received' and not exists ("
            "  select 1 from messages m where m.conversation_id = %s and m.role = 'user' "
            "  and m.id <> %s and m.lease_expires_at > now() "
            "  and (m.status = 'running' or (m.status = 'received' and m.seq < %s))"
            ") returning id",
            (lease_seconds, message_id, conversation_id, message_id, seq),
        )
        if await cur.fetchone() is not None:
            return "started"
        cur = await conn.execute("select status from messages where id = %s", (message_id,))
        row = await cur.fetchone()
    return "waiting" if row is not None and row["status"] == "received" else "gone"


async def renew_many(pool: Pool, message_ids: list[UUID], lease_seconds: float) -> set[UUID]:
    """Extend the leases of the messages a worker holds, in one statement; returns those
    renewed. A running turn whose lease already expired may have been overtaken: it is not
    renewed and must stop."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "update messages set lease_expires_at = now() + make_interval(secs => %s) "
            "where id = any(%s) and status in ('received', 'running') "
            "and (status = 'received' or lease_expires_at > now()) returning id",
            (lease_seconds, message_ids),
        )
        return {row["id"] for row in await cur.fetchall()}


class Orphan(BaseModel):
    """A turn whose worker stopped renewing its lease (killed, or lost the database)."""

    user_message_id: UUID
    reply_id: UUID | None
    conversation_id: str
    user_id: str | None
    agent: str | None
    question: str
    """The user's message."""
    content: str | None
    """What the draft had streamed of the answer."""
    route: dict[str, Any] | None
    sources: list[dict[str, Any]] | None
    model: str | None


@dataclass(frozen=True)
class FinishedAnswer:
    """An orphan's answer the graph had finished and checkpointed before its worker died (only
    the saving of the turn was lost): the turn is finished as answered with it."""

    content: str
    agent: str | None
    metadata: dict[str, Any]


async def claim_orphans(
    pool: Pool,
    limit: int = 100,
    finished: Callable[[Orphan], Awaitable[FinishedAnswer | None]] | None = None,
    repair: Callable[[Orphan], Awaitable[None]] | None = None,
) -> list[Orphan]:
    """Finish the turns whose lease expired: each user row becomes `failed`, and what its draft
    had streamed is kept as an `interrupted` answer (the answer's own id, so never twice); but
    when `finished` finds the whole answer (in the checkpoint), the turn ends `answered` with
    it, as it would have; `repair` puts a partial answer in the checkpoint. Both run while the
    conversation row is locked, before the turn is marked ended: the conversation's next
    message cannot start (`try_start` takes that lock) on a checkpoint not yet repaired. Safe
    to run from every worker at once (`skip locked`)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "select m.id as user_message_id, m.reply_id, m.conversation_id, m.user_id, "
            "coalesce(m.agent, d.agent) as agent, "
            "m.content as question, d.content, d.route, d.sources, d.model "
            "from messages m left join answer_drafts d on d.user_message_id = m.id "
            "where m.role = 'user' and m.status in ('received', 'running') "
            "and m.lease_expires_at < now() "
            "order by m.seq limit %s for update of m skip locked",
            (limit,),
        )
        orphans = [Orphan.model_validate(row) for row in await cur.fetchall()]
        for orphan in orphans:
            await conn.execute(
                "select 1 from conversations where id = %s for update", (orphan.conversation_id,)
            )
            answer = await finished(orphan) if finished is not None else None
            if answer is not None and orphan.reply_id is not None:
                await conn.execute(
                    "insert into messages (id, conversation_id, user_id, role, content, agent, "
                    "status, model, metadata) values (%s, %s, %s, 'assistant', %s, %s, "
                    "'complete', %s, %s) on conflict (id) do update set content = "
                    "excluded.content, status = 'complete', metadata = excluded.metadata",
                    (
                        orphan.reply_id,
                        orphan.conversation_id,
                        orphan.user_id,
                        answer.content,
                        answer.agent or orphan.agent,
                        orphan.model,
                        Jsonb({**answer.metadata, "recovered_from": "checkpoint"}),
                    ),
                )
                await conn.execute(
                    "update messages set status = 'answered', lease_expires_at = null, "
                    "agent = coalesce(agent, %s) where id = %s",
                    (answer.agent or orphan.agent, orphan.user_message_id),
                )
                await conn.execute(
                    "delete from answer_drafts where user_message_id = %s",
                    (orphan.user_message_id,),
                )
                continue
            if orphan.content and orphan.reply_id is not None:
                await conn.execute(
                    "insert into messages (id, conversation_id, user_id, role, content, agent, "
                    "status, model, metadata) values (%s, %s, %s, 'assistant', %s, %s, "
                    "'interrupted', %s, %s) on conflict (id) do nothing",
                    (
                        orphan.reply_id,
                        orphan.conversation_id,
                        orphan.user_id,
                        orphan.content,
                        orphan.agent,
                        orphan.model,
                        Jsonb(
                            {
                                "error": "worker_lost",
                                "route": orphan.route,
                                "sources": orphan.sources or [],
                            }
                        ),
                    ),
                )
                if repair is not None:
                    await repair(orphan)
            await conn.execute(
                "update messages set status = 'failed', lease_expires_at = null, "
                "agent = coalesce(agent, %s) where id = %s",
                (orphan.agent, orphan.user_message_id),
            )
            await conn.execute(
                "delete from answer_drafts where user_message_id = %s", (orphan.user_message_id,)
            )
    return orphans
