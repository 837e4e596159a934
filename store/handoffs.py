"""Hand-offs to a person: the conversation's status, the `handoffs` rows, and the messages the
team and the service write while the team has the conversation (migration 006)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from store.messages import StoredMessage
from store.postgres import Connection, Pool

ConversationStatus = Literal["active", "waiting_for_human"]
HandoffStatus = Literal["open", "released"]
WebhookStatus = Literal["disabled", "pending", "delivered", "failed"]

LAST_MESSAGES = 10
"""How many of the conversation's last messages a hand-off keeps (and the webhook sends)."""

_COLUMNS = (
    "h.id, h.conversation_id, h.user_id, h.status, h.reason, h.router, h.confidence, "
    "h.user_message_id, h.reply_id, h.last_messages, h.opened_at, h.released_at, h.released_by, "
    "h.webhook_status, h.webhook_attempts, h.webhook_http_status, h.webhook_error, "
    "h.webhook_delivered_at, "
    "(select count(*) from messages m where m.conversation_id = h.conversation_id "
    " and m.role = 'user' and m.metadata->>'handoff_id' = h.id::text) as held_messages"
)


class HandoffNotFound(Exception):
    """No hand-off has this id."""


class HandoffClosed(Exception):
    """The hand-off was released: the bot has the conversation again."""


class LastMessage(BaseModel):
    """One message of the conversation as it stood when it was handed off."""

    role: str
    content: str
    agent: str | None
    created_at: datetime


class StoredHandoff(BaseModel):
    """One row of `handoffs`, with how many messages the user sent while waiting."""

    id: UUID
    conversation_id: str
    user_id: str | None
    status: HandoffStatus
    reason: str
    router: str | None
    confidence: float | None
    user_message_id: UUID | None
    reply_id: UUID | None
    last_messages: list[LastMessage]
    opened_at: datetime
    released_at: datetime | None
    released_by: str | None
    webhook_status: WebhookStatus
    webhook_attempts: int
    webhook_http_status: int | None
    webhook_error: str | None
    webhook_delivered_at: datetime | None
    held_messages: int = 0


async def _fetch_handoff(conn: Connection, handoff_id: UUID) -> StoredHandoff | None:
    cur = await conn.execute(f"select {_COLUMNS} from handoffs h where h.id = %s", (handoff_id,))
    row = await cur.fetchone()
    return None if row is None else StoredHandoff.model_validate(row)


async def open_handoff(
    pool: Pool,
    *,
    conversation_id: str,
    user_id: str,
    reason: str,
    router: str,
    confidence: float,
    user_message_id: UUID,
    reply_id: UUID,
    answer: str,
    webhook: bool,
) -> tuple[StoredHandoff, bool]:
    """Give the conversation to the team; returns the hand-off and whether this call opened it.

    One transaction: the conversation is `waiting_for_human` exactly when an open row exists.
    An already open hand-off is returned as is (at most one per conversation). `answer` is what
    the user was just told, not saved yet: it ends the kept `last_messages`.
    """
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "update conversations set status = 'waiting_for_human', updated_at = now() "
            "where id = %s",
            (conversation_id,),
        )
        cur = await conn.execute(
            "select role, content, agent, created_at from messages where conversation_id = %s "
            "order by seq desc limit %s",
            (conversation_id, LAST_MESSAGES - 1 if answer else LAST_MESSAGES),
        )
        recent = [LastMessage.model_validate(row) for row in reversed(await cur.fetchall())]
        if answer:
            recent.append(
                LastMessage(
                    role="assistant", content=answer, agent="escalate", created_at=datetime.now(UTC)
                )
            )
        cur = await conn.execute(
            "insert into handoffs (conversation_id, user_id, reason, router, confidence, "
            "user_message_id, reply_id, last_messages, webhook_status) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "on conflict (conversation_id) where status = 'open' do nothing returning id",
            (
                conversation_id,
                user_id,
                reason,
                router,
                confidence,
                user_message_id,
                reply_id,
                Jsonb([m.model_dump(mode="json") for m in recent]),
                "pending" if webhook else "disabled",
            ),
        )
        row = await cur.fetchone()
        created = row is not None
        if row is None:
            cur = await conn.execute(
                "select id from handoffs where conversation_id = %s and status = 'open'",
                (conversation_id,),
            )
            row = await cur.fetchone()
        assert row is not None
        handoff = await _fetch_handoff(conn, row["id"])
    assert handoff is not None
    return handoff, created


async def hold_message(
    pool: Pool,
    *,
    conversation_id: str,
    user_message_id: UUID,
    notice_id: UUID,
    notice: str,
    metadata: dict[str, Any],
    model: str,
) -> UUID | None:
    """If the team has the conversation, keep the user's message for it and end its turn with
    an acknowledgement; returns the open hand-off's id, or None (nothing written) when the bot
    has it.

    One transaction: the acknowledgement is stored as a `notice` with the answer's id (so the
    history places it after the question and a resumed stream replays it), and the user row
    ends `answered`, its lease released, as `messages.finish_turn` ends a turn. The
    conversation row is locked so a release cannot slip between the check and the writes.
    """
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "select c.user_id, h.id as handoff_id from conversations c "
            "join handoffs h on h.conversation_id = c.id and h.status = 'open' "
            "where c.id = %s and c.status = 'waiting_for_human' for update of c",
            (conversation_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        handoff_id: UUID = row["handoff_id"]
        # The agent stays null so the guide's response-time query does not read it as a turn.
        await conn.execute(
            "update messages set status = 'answered', agent = null, lease_expires_at = null, "
            "metadata = metadata || %s where id = %s and status in ('received', 'running')",
            (Jsonb({"handoff_id": str(handoff_id)}), user_message_id),
        )
        await conn.execute(
            "delete from answer_drafts where user_message_id = %s", (user_message_id,)
        )
        await _insert_message(
            conn,
            message_id=notice_id,
            conversation_id=conversation_id,
            user_id=row["user_id"],
            role="notice",
            content=notice,
            metadata={**metadata, "kind": "handoff_ack", "handoff_id": str(handoff_id)},
            model=model,
        )
    return handoff_id


async def _insert_message(
    conn: Connection,
    *,
    message_id: UUID | None,
    conversation_id: str,
    user_id: str | None,
    role: Literal["human_agent", "notice"],
    content: str,
    metadata: dict[str, Any],
    model: str | None = None,
) -> StoredMessage:
    cur = await conn.execute(
        "insert into messages (id, conversation_id, user_id, role, content, status, model, "
        "metadata) values (coalesce(%s, gen_random_uuid()), %s, %s, %s, %s, 'complete', %s, %s) "
        "returning id, conversation_id, role, content, agent, status, created_at, latency_ms, "
        "model, metadata",
        (message_id, conversation_id, user_id, role, content, model, Jsonb(metadata)),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "update conversations set updated_at = now() where id = %s", (conversation_id,)
    )
    return StoredMessage.model_validate(row)


async def add_team_reply(
    pool: Pool, handoff_id: UUID, content: str, author: str | None
) -> StoredMessage:
    """Store a team member's reply in the conversation (role `human_agent`)."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "select conversation_id, user_id, status from handoffs where id = %s for update",
            (handoff_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise HandoffNotFound(str(handoff_id))
        if row["status"] != "open":
            raise HandoffClosed(str(handoff_id))
        metadata: dict[str, Any] = {"handoff_id": str(handoff_id)}
        if author:
            metadata["author"] = author
        return await _insert_message(
            conn,
            message_id=None,
            conversation_id=row["conversation_id"],
            user_id=row["user_id"],
            role="human_agent",
            content=content,
            metadata=metadata,
        )


async def release(
    pool: Pool, handoff_id: UUID, released_by: str | None, notice: str
) -> StoredHandoff:
    """Give the conversation back to the bot; releasing a released hand-off changes nothing."""
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(
            "update handoffs set status = 'released', released_at = now(), released_by = %s "
            "where id = %s and status = 'open' returning conversation_id, user_id",
            (released_by, handoff_id),
        )
        row = await cur.fetchone()
        if row is not None:
            await conn.execute(
                "update conversations set status = 'active', updated_at = now() where id = %s",
                (row["conversation_id"],),
            )
            await _insert_message(
                conn,
                message_id=None,
                conversation_id=row["conversation_id"],
                user_id=row["user_id"],
                role="notice",
                content=notice,
                metadata={"kind": "handoff_released", "handoff_id": str(handoff_id)},
            )
        handoff = await _fetch_handoff(conn, handoff_id)
    if handoff is None:
        raise HandoffNotFound(str(handoff_id))
    return handoff


async def get_handoff(pool: Pool, handoff_id: UUID) -> StoredHandoff | None:
    async with pool.connection() as conn:
        return await _fetch_handoff(conn, handoff_id)


async def list_handoffs(
    pool: Pool, status: HandoffStatus | None, limit: int = 100
) -> list[StoredHandoff]:
    """Hand-offs, newest first; only those with `status` when given."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"select {_COLUMNS} from handoffs h where (%s::text is null or h.status = %s) "
            "order by h.opened_at desc limit %s",
            (status, status, limit),
        )
        rows = await cur.fetchall()
    return [StoredHandoff.model_validate(row) for row in rows]


async def count_open(pool: Pool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("select count(*) as n from handoffs where status = 'open'")
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def conversation_status(pool: Pool, conversation_id: str) -> ConversationStatus | None:
    """Who has the conversation (the bot, or the team), or None when it does not exist."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select status from conversations where id = %s", (conversation_id,)
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return "waiting_for_human" if row["status"] == "waiting_for_human" else "active"


# Webhook delivery ----------------------------------------------------------------------------


async def claim_delivery(pool: Pool, handoff_id: UUID, stale_after: timedelta) -> bool:
    """Take the webhook delivery of a hand-off, unless another process holds a fresh claim."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "update handoffs set webhook_claimed_at = now() "
            "where id = %s and webhook_status = 'pending' "
            "and (webhook_claimed_at is null or webhook_claimed_at < now() - %s) returning id",
            (handoff_id, stale_after),
        )
        return await cur.fetchone() is not None


async def record_attempt(
    pool: Pool,
    handoff_id: UUID,
    *,
    status: WebhookStatus,
    http_status: int | None,
    error: str | None,
) -> None:
    """Store one delivery attempt's outcome (and renew the claim while it goes on)."""
    async with pool.connection() as conn:
        await conn.execute(
            "update handoffs set webhook_attempts = webhook_attempts + 1, webhook_status = %s, "
            "webhook_http_status = %s, webhook_error = %s, webhook_claimed_at = now(), "
            "webhook_delivered_at = case when %s = 'delivered' then now() "
            "else webhook_delivered_at end where id = %s",
            (status, http_status, error, status, handoff_id),
        )


async def pending_deliveries(pool: Pool, max_age: timedelta, stale_after: timedelta) -> list[UUID]:
    """Deliveries a stopped process left unfinished (recent ones only), oldest first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select id from handoffs where webhook_status = 'pending' "
            "and opened_at > now() - %s "
            "and (webhook_claimed_at is null or webhook_claimed_at < now() - %s) "
            "order by opened_at",
            (max_age, stale_after),
        )
        rows = await cur.fetchall()
    return [row["id"] for row in rows]


async def drop_claim(pool: Pool, handoff_id: UUID) -> None:
    """Give up a delivery still pending (shutdown), so the next start retries it at once."""
    async with pool.connection() as conn:
        await conn.execute(
            "update handoffs set webhook_claimed_at = null "
            "where id = %s and webhook_status = 'pending'",
            (handoff_id,),
        )
