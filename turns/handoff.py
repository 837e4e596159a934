"""The hand-off to a person: an escalated turn gives the conversation to the team until it is
released; meanwhile the user's messages are kept for the team and acknowledged, not routed.

The turn runner calls `hold` when a message's turn comes (before the graph) and `open` when an
escalated turn ends (before the next one may start); the admin routes call `reply` and
`release`. The team hears about a new hand-off through a signed
webhook, sent in the background so it never delays the stream, retried, its outcome stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

import httpx
from pydantic import BaseModel

from core.domain import RouteDecision
from core.metrics import HANDOFF_WEBHOOKS, HANDOFFS_OPENED
from core.settings import Settings
from graph.state import AnswerMeta
from prompts.handoff import HELD_ACKNOWLEDGEMENT, HELD_REASON, RELEASED_NOTICE
from prompts.personas import PROMPT_VERSION
from store import handoffs
from store.handoffs import LastMessage, StoredHandoff
from store.messages import StoredMessage
from store.postgres import Pool
from turns.webhook import Attempt, WebhookSender

log = logging.getLogger(__name__)

HANDOFF_ROUTER = "handoff"
"""The `route` event's `router` when a message is held for the team instead of routed."""
HELD_NOTE = "Held for the team (hand-off open): acknowledged without routing or generation."
# A delivery claimed longer ago than this was abandoned by its process (it renews the claim on
# every attempt, and the longest backoff is 5 minutes).
CLAIM_STALE_AFTER = timedelta(minutes=10)
# At start, deliveries left pending by a stopped process are retried if they are this recent.
RESUME_MAX_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class Held:
    """A message kept for the team: the acknowledgement to stream, as the turn's answer."""

    text: str
    decision: RouteDecision
    meta: AnswerMeta


class HandoffOpened(BaseModel):
    """The webhook's JSON body (event `handoff.opened`)."""

    event: Literal["handoff.opened"] = "handoff.opened"
    handoff_id: UUID
    conversation_id: str
    user_id: str | None
    reason: str
    router: str | None
    confidence: float | None
    opened_at: datetime
    last_messages: list[LastMessage]

    @classmethod
    def of(cls, handoff: StoredHandoff) -> HandoffOpened:
        return cls(
            handoff_id=handoff.id,
            conversation_id=handoff.conversation_id,
            user_id=handoff.user_id,
            reason=handoff.reason,
            router=handoff.router,
            confidence=handoff.confidence,
            opened_at=handoff.opened_at,
            last_messages=handoff.last_messages,
        )


class HandoffDesk:
    """Opens, holds for, replies to and releases hand-offs; owns the webhook deliveries."""

    def __init__(self, pool: Pool, sender: WebhookSender | None = None):
        self._pool = pool
        self._sender = sender
        self._tasks: set[asyncio.Task[None]] = set()

    async def hold(
        self, *, conversation_id: str, user_message_id: UUID, reply_id: UUID
    ) -> Held | None:
        """If the team has the conversation: the message is kept for it and acknowledged (the
        acknowledgement stored as the turn's answer, a `notice` with the answer's id, and the
        turn finished), and what to stream is returned. None when the bot has it."""
        decision = RouteDecision(
            route="escalate", confidence=1.0, reason=HELD_REASON, router=HANDOFF_ROUTER
        )
        meta = AnswerMeta(
            agent="escalate",
            model=HANDOFF_ROUTER,
            llm=False,
            prompt_version=PROMPT_VERSION,
            note=HELD_NOTE,
        )
        handoff_id = await handoffs.hold_message(
            self._pool,
            conversation_id=conversation_id,
            user_message_id=user_message_id,
            notice_id=reply_id,
            notice=HELD_ACKNOWLEDGEMENT,
            # What a resumed stream replays (turns/resume.py reads an answer's metadata).
            metadata={
                "route": decision.model_dump(),
                "note": HELD_NOTE,
                "llm": False,
                "prompt_version": PROMPT_VERSION,
            },
            model=HANDOFF_ROUTER,
        )
        if handoff_id is None:
            return None
        return Held(text=HELD_ACKNOWLEDGEMENT, decision=decision, meta=meta)

    async def open(
        self,
        *,
        conversation_id: str,
        user_id: str,
        decision: RouteDecision,
        user_message_id: UUID,
        reply_id: UUID,
        answer: str = "",
    ) -> StoredHandoff | None:
        """Give the conversation to the team after an escalated turn, and notify it.

        Never raises (a hand-off must not cost the user the answer): a failure is logged and
        the conversation stays with the bot.
        """
        try:
            handoff, created = await handoffs.open_handoff(
                self._pool,
                conversation_id=conversation_id,
                user_id=user_id,
                reason=decision.reason,
                router=decision.router,
                confidence=decision.confidence,
                user_message_id=user_message_id,
                reply_id=reply_id,
                answer=answer,
                webhook=self._sender is not None,
            )
        except Exception:
            log.exception("could not open a hand-off for conversation %s", conversation_id)
            return None
        if created:
            HANDOFFS_OPENED.inc()
            self._notify(handoff.id)
        return handoff

    async def reply(self, handoff_id: UUID, content: str, author: str | None) -> StoredMessage:
        """A team member's reply, shown in the conversation (role `human_agent`)."""
        return await handoffs.add_team_reply(self._pool, handoff_id, content, author)

    async def release(self, handoff_id: UUID, released_by: str | None) -> StoredHandoff:
        """Give the conversation back to the bot: the next message is routed again."""
        return await handoffs.release(self._pool, handoff_id, released_by, RELEASED_NOTICE)

    async def resume_deliveries(self) -> int:
        """Retry the webhooks a stopped process left pending; returns how many were restarted."""
        if self._sender is None:
            return 0
        pending = await handoffs.pending_deliveries(self._pool, RESUME_MAX_AGE, CLAIM_STALE_AFTER)
        for handoff_id in pending:
            self._notify(handoff_id)
        return len(pending)

    async def wait_idle(self, grace_seconds: float = 10.0) -> None:
        """Let deliveries finish (server shutdown); those still waiting to retry are stopped
        and left pending for the next start."""
        if not self._tasks:
            return
        _, running = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)

    def _notify(self, handoff_id: UUID) -> None:
        if self._sender is None:
            return
        task = asyncio.create_task(self._deliver(self._sender, handoff_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, sender: WebhookSender, handoff_id: UUID) -> None:
        try:
            if not await handoffs.claim_delivery(self._pool, handoff_id, CLAIM_STALE_AFTER):
                return
            handoff = await handoffs.get_handoff(self._pool, handoff_id)
            if handoff is None:
                return
            payload = HandoffOpened.of(handoff)

            async def record(attempt: Attempt) -> None:
                HANDOFF_WEBHOOKS.labels(outcome=attempt.outcome).inc()
                await handoffs.record_attempt(
                    self._pool,
                    handoff_id,
                    status="pending" if attempt.outcome == "retry" else attempt.outcome,
                    http_status=attempt.http_status,
                    error=attempt.error,
                )

            await sender.deliver(
                event=payload.event,
                delivery_id=str(handoff_id),
                body=payload.model_dump_json().encode(),
                on_attempt=record,
            )
        except asyncio.CancelledError:
            with suppress(Exception):
                await handoffs.drop_claim(self._pool, handoff_id)
            raise
        except Exception:
            log.exception("webhook delivery of hand-off %s stopped", handoff_id)


@asynccontextmanager
async def open_handoff_desk(settings: Settings, pool: Pool) -> AsyncIterator[HandoffDesk]:
    """The desk, with a webhook sender when HANDOFF_WEBHOOK_URL is set; resumes pending ones."""
    if settings.handoff_webhook_url is None or settings.handoff_webhook_secret is None:
        desk = HandoffDesk(pool)
        yield desk
        return
    async with httpx.AsyncClient(follow_redirects=False) as client:
        sender = WebhookSender(
            settings.handoff_webhook_url,
            settings.handoff_webhook_secret.get_secret_value(),
            client,
            max_attempts=settings.handoff_webhook_max_attempts,
            backoff_seconds=settings.handoff_webhook_backoff_seconds,
            timeout_seconds=settings.handoff_webhook_timeout_seconds,
        )
        desk = HandoffDesk(pool, sender)
        try:
            restarted = await desk.resume_deliveries()
            if restarted:
                log.info("resuming %d pending hand-off webhooks", restarted)
        except Exception:
            log.exception("could not resume pending hand-off webhooks")
        try:
            yield desk
        finally:
            await desk.wait_idle()
