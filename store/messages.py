"""Conversations and messages: the product's record of what was said, separate from checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class Admitted:
    """A stored user message: its arrival number, and whether its turn may start at once."""

    seq: int
    started: bool
    with_team: bool
    """The conversation was waiting for a person when the message arrived (issue 14)."""


async def save_user_message(
    pool: Pool,
    *,
    message_id: UUID,
    reply_id: UUID,
    conversation_id: str,
    user_id: str,
    content: str,
    metadata: dict[str, Any],
    worker: str,
    lease_seconds: float,
    reject_if_busy: bool = False,
) -> Admitted:
    """Commit the user's message (and its conversation) before any work starts on it.

    One transaction, sent as one pipeline. The conversation row stays locked until it commits,
    so two messages of one conversation get their `seq` in commit order, and the insert (a new
    statement, so it sees what committed before the lock was granted) knows whether another
    message is waiting or running: if none, this one starts `running` at once (no second round
    trip); if so, it waits as `received`, or, with `reject_if_busy`, is stored `rejected` and
    `ConversationBusy` raised. Another user's conversation raises
    `ConversationOwnedByAnotherUser` and stores nothing.
    """
    async with pool.admit() as conn:
        async with conn.pipeline(), conn.transaction():
            owner_cursor = await conn.execute(
                "insert into conversations (id, user_id) values (%s, %s) "
                "on conflict (id) do update set updated_at = now(), "
                "user_id = coalesce(conversations.user_id, excluded.user_id) "
                "returning user_id, status",
                (conversation_id, user_id),
            )
            insert_cursor = await conn.execute(
                "insert into messages (id, conversation_id, user_id, role, content, status, "
                "metadata, worker, lease_expires_at, reply_id) "
                "select %(id)s, %(c)s, %(u)s, 'user', %(content)s, "
                "case when exists (select 1 from messages m where m.conversation_id = %(c)s "
                "  and m.role = 'user' and m.status in ('received', 'running') "
                "  and m.lease_expires_at > now()) then %(busy)s else 'running' end, "
                "%(meta)s, %(worker)s, now() + make_interval(secs => %(lease)s), %(reply)s "
                "where (select user_id from conversations where id = %(c)s) = %(u)s "
                "returning seq, status",
                {
                    "id": message_id,
                    "c": conversation_id,
                    "u": user_id,
                    "content": content,
                    "busy": "rejected" if reject_if_busy else "received",
                    "meta": Jsonb(metadata),
                    "worker": worker,
                    "lease": lease_seconds,
                    "reply": reply_id,
                },
            )
        owner = await owner_cursor.fetchone()
        inserted = await insert_cursor.fetchone()
    if owner is None or owner["user_id"] != user_id or inserted is None:
        raise ConversationOwnedByAnotherUser(conversation_id)
    if inserted["status"] == "rejected":
        raise ConversationBusy(conversation_id)
    return Admitted(
        seq=int(inserted["seq"]),
        started=inserted["status"] == "running",
        with_team=owner["status"] == "waiting_for_human",
    )


@dataclass(frozen=True)
class Answer:
    """The assistant row that ends a turn (complete, or interrupted with what was streamed)."""

    message_id: UUID
    content: str
    agent: str | None
    status: MessageStatus
    latency_ms: int
    model: str | None
    metadata: dict[str, Any]


async def finish_turn(
    pool: Pool,
    *,
    user_message_id: UUID,
    conversation_id: str,
    user_id: str,
    status: MessageStatus,
    answer: Answer | None,
) -> None:
    """End a turn in one transaction: its answer (at most one, whoever saves it first), the
    user row's final status and the specialist who took it, and the draft gone. Never on the
    token path, and nothing is written while the graph runs: a round trip awaited between two
    of its steps would hold the next step back (the draft carries the route for a crash)."""
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        if answer is not None:
            await conn.execute(
                "insert into messages (id, conversation_id, user_id, role, content, agent, "
                "status, latency_ms, model, metadata) "
                "values (%s, %s, %s, 'assistant', %s, %s, %s, %s, %s, %s) "
                "on conflict (id) do nothing",
                (
                    answer.message_id,
                    conversation_id,
                    user_id,
                    answer.content,
                    answer.agent,
                    answer.status,
                    answer.latency_ms,
                    answer.model,
                    Jsonb(answer.metadata),
                ),
            )
        await conn.execute(
            "update messages set status = %s, lease_expires_at = null, "
            "agent = coalesce(%s, agent) where id = %s and status in ('received', 'running')",
            (status, answer.agent if answer is not None else None, user_message_id),
        )
        await conn.execute(
            "delete from answer_drafts where user_message_id = %s", (user_message_id,)
        )
        await conn.execute(
            "update conversations set updated_at = now() where id = %s", (conversation_id,)
        )


async def conversation_owner(pool: Pool, conversation_id: str) -> str | None:
    """The user_id a conversation belongs to, or None when it does not exist."""
    async with pool.admit() as conn:
        cur = await conn.execute(
            "select user_id from conversations where id = %s", (conversation_id,)
        )
        row = await cur.fetchone()
    return None if row is None else str(row["user_id"])


# Conversation order: each answer right after its question, although a queued question may be
# stored before the previous answer. An answer sorts with its question (`reply_id`); rows without
# one (v1's, the team's) by their own arrival.
ORDERED = (
    "select m.id, m.conversation_id, m.role, m.content, m.agent, m.status, m.created_at, "
    "m.latency_ms, m.model, m.metadata, coalesce(u.seq, m.seq) as turn_seq, "
    "case when m.role = 'user' then 0 else 1 end as turn_rank "
    "from messages m left join messages u on m.role <> 'user' and u.reply_id = m.id "
    "where m.conversation_id = %s"
)


async def list_messages(
    pool: Pool, conversation_id: str, limit: int = 200, before: UUID | None = None
) -> list[StoredMessage]:
    """Up to `limit` messages in conversation order, oldest first: the latest ones, or those
    just before the message `before` (a page further back)."""
    query = (
        f"select * from ({ORDERED}) page "
        "where %s::uuid is null or (turn_seq, turn_rank, id) < ("
        f"  select turn_seq, turn_rank, id from ({ORDERED}) cursor where cursor.id = %s::uuid)"
        " order by turn_seq desc, turn_rank desc, id desc limit %s"
    )
    async with pool.admit() as conn:
        cur = await conn.execute(
            query.encode(), (conversation_id, before, conversation_id, before, limit)
        )
        rows = await cur.fetchall()
    return [StoredMessage.model_validate(row) for row in reversed(rows)]


@dataclass(frozen=True)
class TurnRecord:
    """A turn as the resume route finds it: the user row that carries the answer's id."""

    user_message_id: UUID
    reply_id: UUID
    conversation_id: str
    owner: str | None
    status: str
    agent: str | None
    expired: bool


async def find_turn(pool: Pool, reply_id: UUID) -> TurnRecord | None:
    """The turn whose answer has id `reply_id`, with its conversation's owner."""
    async with pool.admit() as conn:
        cur = await conn.execute(
            "select m.id, m.reply_id, m.conversation_id, c.user_id as owner, m.status, m.agent, "
            "coalesce(m.lease_expires_at < now(), false) as expired "
            "from messages m join conversations c on c.id = m.conversation_id "
            "where m.reply_id = %s and m.role = 'user'",
            (reply_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return TurnRecord(
        user_message_id=row["id"],
        reply_id=row["reply_id"],
        conversation_id=row["conversation_id"],
        owner=row["owner"],
        status=row["status"],
        agent=row["agent"],
        expired=bool(row["expired"]),
    )


async def get_message(pool: Pool, message_id: UUID) -> StoredMessage | None:
    """One message by id."""
    async with pool.admit() as conn:
        cur = await conn.execute(
            "select id, conversation_id, role, content, agent, status, created_at, latency_ms, "
            "model, metadata from messages where id = %s",
            (message_id,),
        )
        row = await cur.fetchone()
    return None if row is None else StoredMessage.model_validate(row)
