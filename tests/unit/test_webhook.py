"""The hand-off webhook's signature and retry policy (httpx's in-memory transport: no network)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from turns.webhook import (
    MAX_DELAY_SECONDS,
    Attempt,
    WebhookSender,
    backoff_delay,
    signature,
    verify,
)

SECRET = "s3cret"
BODY = json.dumps({"event": "handoff.opened", "handoff_id": "h-1"}).encode()


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1700000000, BODY) == f"sha256={expected}"


def test_verify_accepts_only_a_fresh_untampered_delivery() -> None:
    headers = {
        "X-Chatbot-Timestamp": "1700000000",
        "X-Chatbot-Signature": signature(SECRET, 1700000000, BODY),
    }
    assert verify(SECRET, BODY, headers, now=1700000010)
    lowercase = {k.lower(): v for k, v in headers.items()}
    assert verify(SECRET, BODY, lowercase, now=1700000010)
    assert not verify(SECRET, BODY + b" ", headers, now=1700000010)
    assert not verify("other", BODY, headers, now=1700000010)
    assert not verify(SECRET, BODY, headers, now=1700000000 + 301)  # a replay, too late
    assert not verify(
        SECRET, BODY, {**headers, "X-Chatbot-Timestamp": "1700000001"}, now=1700000010
    )
    assert not verify(SECRET, BODY, {"X-Chatbot-Timestamp": "soon"}, now=1700000010)


def test_backoff_doubles_with_jitter_and_respects_retry_after() -> None:
    for attempt, nominal in ((1, 2.0), (2, 4.0), (3, 8.0)):
        delays = [backoff_delay(2.0, attempt) for _ in range(50)]
        assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
    assert backoff_delay(2.0, 30) <= 1.2 * MAX_DELAY_SECONDS
    assert backoff_delay(0.01, 1, retry_after=7) == 7
    assert backoff_delay(0.01, 1, retry_after=10_000) == MAX_DELAY_SECONDS


def sender(handler: httpx.MockTransport, attempts: int = 4) -> WebhookSender:
    return WebhookSender(
        "https://team.example/hook",
        SECRET,
        httpx.AsyncClient(transport=handler),
        max_attempts=attempts,
        backoff_seconds=0.001,
        timeout_seconds=1,
    )


async def deliver(webhook: WebhookSender) -> list[Attempt]:
    seen: list[Attempt] = []

    async def record(attempt: Attempt) -> None:
        seen.append(attempt)

    final = await webhook.deliver(
        event="handoff.opened", delivery_id="h-1", body=BODY, on_attempt=record
    )
    assert final == seen[-1]
    return seen


async def test_retries_until_delivered_and_signs_every_attempt() -> None:
    statuses = iter([503, 429, 200])
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(next(statuses), headers={"Retry-After": "0"})

    attempts = await deliver(sender(httpx.MockTransport(answer)))
    assert [(a.outcome, a.http_status) for a in attempts] == [
        ("retry", 503),
        ("retry", 429),
        ("delivered", 200),
    ]
    for request in requests:
        assert request.content == BODY
        assert request.headers["X-Chatbot-Delivery"] == "h-1"
        assert request.headers["X-Chatbot-Event"] == "handoff.opened"
        assert verify(SECRET, request.content, dict(request.headers))


async def test_a_refusal_is_final() -> None:
    calls = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(404)

    attempts = await deliver(sender(httpx.MockTransport(answer)))
    assert [(a.outcome, a.http_status) for a in attempts] == [("failed", 404)]
    assert calls == 1


@pytest.mark.parametrize("attempts", [1, 3])
async def test_gives_up_after_the_last_attempt(attempts: int) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    seen = await deliver(sender(httpx.MockTransport(answer), attempts=attempts))
    assert [a.outcome for a in seen] == ["retry"] * (attempts - 1) + ["failed"]
    assert seen[-1].error is not None
    assert seen[-1].error.startswith("ConnectError")
