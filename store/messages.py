"""Conversations and messages: the product's record of what was said, separate from checkpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from store.postgres import Pool

MessageStatus = Literal[
    "received", "running", "answered", "complete", "interrupted", "failed", "rejected"
]


class ConversationOwnedByAnotherUser(Exception):
    """A conversation id was reused by a different user_id."""


class ConversationBusy(Exception):
    """Another message of the conversation is waiting or being answered (MULTITASK=reject)."""


class StoredMessage(BaseModel):
    """One row of `messages`, as the widget's history shows it."""

    id: UUID
    conversation_id: str
    role: str
    content: str
    agent: str | None
    status: str
    created_at: datetime
    latency_ms: int | None = None
    model: str | None = None
    metadata: dict[str, Any] = {}


async def save_user_message(
    pool: Pool,
    *,
    message_id: UUID,
    conversation_id: str,
    user_id: str,
    content: str,
    metadata: dict[str, Any],
    worker: str,
    lease_seconds: float,
    reject_if_busy: bool = False,
) -> int:
    """Commit the user's message (and its conversation) before any work starts on it; returns
    its arrival number in the conversation's queue.

    The conversation row stays locked until the insert commits, so two messages of one
    conversation get their `seq` in commit order. With `reject_if_busy`, a message that finds
    another one waiting or being answered is stored as `rejected` and `ConversationBusy` raised.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "insert into conversations (id, user_id) values (%s, %s) "
            "on conflict (id) do update set updated_at = now() "
            "returning user_id",
            (conversation_id, user_id),
        )
        row = await cur.fetchone()
        owner = row["user_id"] if row else None
        if owner is not None and owner != user_id:
            raise ConversationOwnedByAnotherUser(conversation_id)
        if owner is None:
            await conn.execute(
                "update conversations set user_id = %s where id = %s", (user_id, conversation_id)
            )
        busy = False
        if reject_if_busy:
            cur = await conn.execute(
                "select exists (select 1 from messages where conversation_id = %s "
                "and role = 'user' and status in ('received', 'running') "
                "and lease_expires_at > now()) as busy",
                (conversation_id,),
            )
            flag = await cur.fetchone()
            busy = bool(flag and flag["busy"])
        cur = await conn.execute(
            "insert into messages (id, conversation_id, user_id, role, content, status, metadata, "
            "worker, lease_expires_at) values (%s, %s, %s, 'user', %s, %s, %s, %s, "
            "now() + make_interval(secs => %s)) returning seq",
            (
                message_id,
                conversation_id,
                user_id,
                content,
                "rejected" if busy else "received",
                Jsonb(metadata),
                worker,
                lease_seconds,
            ),
        )
        inserted = await cur.fetchone()
    if busy:
        raise ConversationBusy(conversation_id)
    assert inserted is not None
    return int(inserted["seq"])


async def set_message_agent(pool: Pool, message_id: UUID, agent: str) -> None:
    """Record on the user's row which specialist took it, as soon as the router decides."""
    async with pool.connection() as conn:
        await conn.execute("update messages set agent = %s where id = %s", (agent, message_id))


async def set_message_status(pool: Pool, message_id: UUID, status: MessageStatus) -> None:
    """Mark the user's row answered or failed once the turn is over (which frees its turn)."""
    async with pool.connection() as conn:
        await conn.execute(
            "update messages set status = %s, lease_expires_at = null where id = %s",
            (status, message_id),
        )


async def save_assistant_message(
    pool: Pool,
    *,
    message_id: UUID,
    conversation_id: str,
    user_id: str,
    content: str,
    agent: str | None,
    status: MessageStatus,
    latency_ms: int,
    model: str | None,
    metadata: dict[str, Any],
) -> None:
    """Save the answer once the stream is over (never on the token path)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "insert into messages (id, conversation_id, user_id, role, content, agent, status, "
            "latency_ms, model, metadata) values (%s, %s, %s, 'assistant', %s, %s, %s, %s, %s, %s)",
            (
                message_id,
                conversation_id,
                user_id,
                content,
                agent,
                status,
                latency_ms,
                model,
                Jsonb(metadata),
            ),
        )
        await conn.execute(
            "update conversations set updated_at = now() where id = %s", (conversation_id,)
        )


async def conversation_owner(pool: Pool, conversation_id: str) -> str | None:
    """The user_id a conversation belongs to, or None when it does not exist."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select user_id from conversations where id = %s", (conversation_id,)
        )
        row = await cur.fetchone()
    return None if row is None else str(row["user_id"])


async def list_messages(pool: Pool, conversation_id: str, limit: int = 200) -> list[StoredMessage]:
    """A conversation's messages, oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select id, conversation_id, role, content, agent, status, created_at, latency_ms, "
            "model, metadata from messages where conversation_id = %s "
            "order by created_at, case role when 'user' then 0 else 1 end limit %s",
            (conversation_id, limit),
        )
        rows = await cur.fetchall()
    return [StoredMessage.model_validate(row) for row in rows]
