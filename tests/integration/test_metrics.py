"""`GET /metrics`, read with prometheus-client's own parser: turns, latencies, rate limiting,
provider errors and fallbacks, open hand-offs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from devtools.fake_provider import FakeProvider
from devtools.processes import ServerProcess, clean_environment, free_port
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


@pytest.mark.slow
async def test_several_workers_are_summed(services: Services, tmp_path: Path) -> None:
    """WORKERS=2: whichever process answers the scrape, it counts the turns of both."""
    env = clean_environment(
        DATABASE_URL=services.database_url,
        DATA_DIR=str(tmp_path),
        PORT=str(free_port()),
        WORKERS="2",
        RATE_LIMIT_PER_MINUTE="0",
        LOG_LEVEL="warning",
    )
    server = ServerProcess(env)
    try:
        await server.ready()
        turns, pids = 12, set()
        # A new connection per request, so the kernel may hand each to either process.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            before = [await scrape(client) for _ in range(6)]
            for i in range(turns):
                payload = {
                    "user_id": "u-workers",
                    "conversation_id": f"workers-{i}",
                    "message": "Bonjour",
                }
                assert (await client.post("/api/chat", json=payload)).status_code == 200
            after = [await scrape(client) for _ in range(6)]
        async with services.pool.connection() as conn:
            cur = await conn.execute(
                "select distinct split_part(worker, ':', 2) as pid from messages "
                "where conversation_id like 'workers-%%' and role = 'user'"
            )
            pids = {row["pid"] for row in await cur.fetchall()}
    finally:
        server.stop()
    assert len(pids) == 2, pids  # both workers answered
    # Every scrape, whichever worker served it, sees the same total: both workers' turns.
    start_total = {total_turns(samples) for samples in before}
    assert len(start_total) == 1
    assert {total_turns(samples) for samples in after} == {start_total.pop() + turns}


def total_turns(samples: Samples) -> float:
    return sum(v for (name, _), v in samples.items() if name == "chatbot_turns_total")
