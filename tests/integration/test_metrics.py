"""`GET /metrics`, read with prometheus-client's own parser: turns, latencies, rate limiting,
provider errors and fallbacks, open hand-offs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from devtools.fake_provider import FakeProvider
from services import Services
from store.handoffs import count_open
from tests.integration.conftest import (
    LLM_PRIMARY,
    LLM_ROUTER,
    LiveServer,
)
from tests.integration.sse import stream_chat

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_turn_is_counted_with_its_latencies(
    client: httpx.AsyncClient, services: Services
) -> None:
    before = await scrape(client)
    events = await stream_chat(
        client,
        {
            "user_id": "u-metrics",
            "conversation_id": "metrics-1",
            "message": "Comment automatiser mes emails de bienvenue ?",
        },
    )
    end = events[-1].data
    after = await scrape(client)
    assert delta(before, after, "chatbot_turns_total", agent="audrey", status="complete") == 1
    assert delta(before, after, "chatbot_first_token_seconds_count", agent="audrey") == 1
    assert delta(before, after, "chatbot_first_token_seconds_sum", agent="audrey") == pytest.approx(
        end["first_token_ms"] / 1000
    )
    assert delta(
        before, after, "chatbot_turn_seconds_sum", agent="audrey", status="complete"
    ) == pytest.approx(end["latency_ms"] / 1000)
    # The bucket holding this turn's latency counted it; the histogram's buckets are cumulative.
    le = next(b for b in ("1.0", "5.0", "30.0", "+Inf") if end["latency_ms"] / 1000 <= float(b))
    assert (
        delta(
            before, after, "chatbot_turn_seconds_bucket", agent="audrey", status="complete", le=le
        )
        == 1
    )
    assert value(after, "chatbot_handoffs_open") == await count_open(services.pool)
    assert value(after, "chatbot_database_up") == 1


async def test_rate_limited_requests_are_counted(limited_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=limited_server.url, timeout=60) as client:
        before = await scrape(client)
        payload = {"user_id": "u-429", "conversation_id": "metrics-429", "message": "Bonjour"}
        statuses: list[int] = []
        while 429 not in statuses and len(statuses) < 3:
            statuses.append((await client.post("/api/chat", json=payload)).status_code)
        after = await scrape(client)
    assert statuses[-1] == 429
    assert delta(before, after, "chatbot_rate_limited_requests_total", route="/api/chat") == 1


@pytest.fixture
async def llm(llm_server: LiveServer, fake_llm: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=60) as client:
        try:
            yield client
        finally:
            fake_llm.reset()


async def test_provider_errors_and_fallbacks(
    llm: httpx.AsyncClient, fake_llm: FakeProvider
) -> None:
    before = await scrape(llm)
    fake_llm.script(LLM_ROUTER, faults=["500"])
    fake_llm.script(LLM_PRIMARY, faults=["500"])
    events = await stream_chat(
        llm,
        {
            "user_id": "u-fault",
            "conversation_id": "metrics-fault",
            "message": "Comment automatiser mes emails de bienvenue ?",
        },
    )
    assert events[-1].event == "end"
    after = await scrape(llm)
    assert (
        delta(
            before,
            after,
            "chatbot_provider_errors_total",
            role="router",
            provider=f"llm/{LLM_ROUTER}",
        )
        == 1
    )
    assert delta(before, after, "chatbot_provider_fallbacks_total", role="router") == 1
    assert (
        delta(
            before,
            after,
            "chatbot_provider_errors_total",
            role="generator",
            provider=f"openrouter/{LLM_PRIMARY}",
        )
        == 1
    )
    assert delta(before, after, "chatbot_provider_fallbacks_total", role="generator") == 1
    assert delta(before, after, "chatbot_turns_total", agent="audrey", status="complete") == 1


async def test_an_interrupted_answer_is_counted_as_such(
    llm: httpx.AsyncClient, fake_llm: FakeProvider
) -> None:
    before = await scrape(llm)
    fake_llm.script(LLM_PRIMARY, faults=["cut:3"])
    events = await stream_chat(
        llm,
        {
            "user_id": "u-cut",
            "conversation_id": "metrics-cut",
            "message": "Comment automatiser mes emails de bienvenue ?",
        },
    )
    assert events[-1].event == "error"
    after = await scrape(llm)
    assert delta(before, after, "chatbot_turns_total", agent="audrey", status="interrupted") == 1
    assert (
        delta(
            before,
            after,
            "chatbot_provider_errors_total",
            role="generator",
            provider=f"openrouter/{LLM_PRIMARY}",
        )
        == 1
    )
