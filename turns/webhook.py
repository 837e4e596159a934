"""Signed webhook POSTs with retries: how the team hears about a hand-off.

The receiver checks the signature (see `verify`, or README "Hand-off to a person"):
`X-Chatbot-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Chatbot-Timestamp>." + body)>`.
Signing the timestamp with the body lets the receiver refuse replays of an old delivery;
`X-Chatbot-Delivery` is the same on every retry, so a receiver can drop duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Chatbot-Signature"
TIMESTAMP_HEADER = "X-Chatbot-Timestamp"
EVENT_HEADER = "X-Chatbot-Event"
DELIVERY_HEADER = "X-Chatbot-Delivery"

MAX_DELAY_SECONDS = 300.0
# Worth another try: the receiver is down, overloaded or asks to wait. Any other 4xx is a
# configuration problem that retrying will not fix.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

Outcome = Literal["delivered", "retry", "failed"]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Chatbot-Signature` value of `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does: a valid signature of this body, sent recently."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected, lowered.get(SIGNATURE_HEADER.lower(), ""))


@dataclass(frozen=True)
class Attempt:
    """One POST and what came of it."""

    number: int
    outcome: Outcome
    http_status: int | None = None
    error: str | None = None


def backoff_delay(base: float, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the next try: doubling from `base`, jittered ±20 %, at least Retry-After."""
    delay: float = min(MAX_DELAY_SECONDS, base * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_DELAY_SECONDS))
    return delay


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


class WebhookSender:
    """POSTs a JSON body to one URL, signed, until it is accepted or the attempts run out."""

    def __init__(
        self,
        url: str,
        secret: str,
        client: httpx.AsyncClient,
        *,
        max_attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
    ):
        self.url = url
        self._secret = secret
        self._client = client
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds

    async def deliver(
        self,
        *,
        event: str,
        delivery_id: str,
        body: bytes,
        on_attempt: Callable[[Attempt], Awaitable[None]],
    ) -> Attempt:
        """Send until delivered, refused for good, or out of attempts; reports every attempt."""
        number = 0
        while True:
            number += 1
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: signature(self._secret, timestamp, body),
            }
            retry_after: float | None = None
            try:
                response = await self._client.post(
                    self.url, content=body, headers=headers, timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                attempt = Attempt(number, "retry", error=f"{type(exc).__name__}: {exc}"[:500])
            else:
                status = response.status_code
                if 200 <= status < 300:
                    attempt = Attempt(number, "delivered", http_status=status)
                elif status in RETRYABLE_STATUSES:
                    retry_after = _retry_after(response)
                    attempt = Attempt(number, "retry", http_status=status, error=f"HTTP {status}")
                else:
                    attempt = Attempt(number, "failed", http_status=status, error=f"HTTP {status}")
            if attempt.outcome == "retry" and number >= self._max_attempts:
                attempt = Attempt(number, "failed", attempt.http_status, attempt.error)
            await on_attempt(attempt)
            if attempt.outcome != "retry":
                if attempt.outcome == "failed":
                    log.warning("webhook %s %s failed: %s", event, delivery_id, attempt.error)
                return attempt
            await asyncio.sleep(backoff_delay(self._backoff, number, retry_after))
