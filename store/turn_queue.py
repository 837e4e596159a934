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

from typing import Literal
from uuid import UUID

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


async def renew(pool: Pool, message_id: UUID, lease_seconds: float) -> bool:
    """Extend the lease of a pending message; False when it was lost (expired, or swept).

    A running turn whose lease already expired may have been overtaken: it must stop.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            "update messages set lease_expires_at = now() + make_interval(secs => %s) "
            "where id = %s and status in ('received', 'running') "
            "and (status = 'received' or lease_expires_at > now()) returning id",
            (lease_seconds, message_id),
        )
        return await cur.fetchone() is not None
