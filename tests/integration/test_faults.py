"""Faults and hostile input: streams that resume, a worker killed mid-answer, a database that
goes away, request limits, signed identity, checkpoint retention, and the soak's audit."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from pydantic import SecretStr

from core.settings import Settings
from devtools.audit import audit, compare_history
from devtools.fake_provider import FakeProvider, fake_provider
from devtools.processes import ServerProcess, clean_environment
from ingest.pipeline import ingest_knowledge_base
from server import serve_in_background
from services import Services, open_services
from store import checkpoints, drafts, messages
from store.migrations import apply_migrations
from store.postgres import start_embedded, stop_embedded
from tests.integration.conftest import _free_port, fresh_database, on_fake_provider, postgres_dir
from tests.integration.sse import Event, read_events
from turns.recovery import sweep_orphans
from turns.runner import TurnRequest, append_interrupted_answer

LLM = "faults/llm"
# Long enough to be cut in the middle: ~60 words.
LONG_ANSWER = " ".join(f"mot{i}" for i in range(60)) + " [1]"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_script(fake: FakeProvider) -> None:
    fake.reset()


@pytest.fixture(scope="module")
async def fault_settings(fake: FakeProvider, data_dir: Path, knowledge_dir: Path) -> Settings:
    return on_fake_provider(
        fake,
        await fresh_database(data_dir, "faults"),
        knowledge_dir,
        llm=LLM,
        router=LLM,
        turn_lease_seconds=2.0,
        draft_flush_seconds=0.2,
    )


@pytest.fixture(scope="module")
async def fault_services(fault_settings: Settings, knowledge_dir: Path) -> AsyncIterator[Services]:
    async with open_services(fault_settings) as built:
        await ingest_knowledge_base(
            built.pool, built.providers.embeddings, knowledge_dir, progress=False
        )
        yield built


@pytest.fixture(scope="module")
async def two_workers(
    fault_settings: Settings, fault_services: Services
) -> AsyncIterator[list[str]]:
    """Two servers on one database: two workers, each with its own running turns."""
    async with AsyncExitStack() as stack:
        urls = [
            await stack.enter_async_context(serve_in_background(fault_settings, _free_port()))
            for _ in range(2)
        ]
        yield urls


async def _read_until(
    client: httpx.AsyncClient, url: str, payload: dict[str, Any], tokens: int
) -> list[Event]:
    """Stream, and drop the connection after `tokens` token events (a network drop)."""
    seen: list[Event] = []
    async with client.stream("POST", f"{url}/api/chat/stream", json=payload) as response:
        assert response.status_code == 200
        async for event in read_events(response):
            seen.append(event)
            if sum(e.event == "token" for e in seen) >= tokens:
                break
    return seen


async def _resume(
    client: httpx.AsyncClient, url: str, message_id: str, user_id: str, after: str
) -> list[Event]:
    async with client.stream(
        "GET",
        f"{url}/api/chat/stream/{message_id}",
        params={"user_id": user_id},
        headers={"Last-Event-ID": after},
    ) as response:
        assert response.status_code == 200, await response.aread()
        return [event async for event in read_events(response)]


def _text(events: list[Event]) -> str:
    return "".join(e.data["text"] for e in events if e.event == "token")


async def test_a_dropped_stream_resumes_live_on_another_worker_and_after_the_end(
    two_workers: list[str], fault_services: Services, fake: FakeProvider
) -> None:
    fake.script(LLM, text=LONG_ANSWER, config={"ttft_ms": 50, "token_delay_ms": 60})
    user = f"u-{uuid4().hex[:6]}"
    payload = {"user_id": user, "conversation_id": f"resume-{user}", "message": "Relances ?"}
    async with httpx.AsyncClient(timeout=60) as client:
        before = await _read_until(client, two_workers[0], payload, tokens=5)
        message_id = before[0].data["message_id"]
        # The other worker: it has the turn only through the database (the draft), live.
        after = await _resume(client, two_workers[1], message_id, user, before[-1].id or "0")
        assert after[-1].event == "end"
        assert any(e.event == "token" for e in after)
        ids = [int(e.id or 0) for e in before + after]
        assert ids == sorted(set(ids)), "ids only grow, nothing sent twice"
        full = _text(before) + _text(after)
        # Once ended, from the stored answer: after any id, on any worker.
        replayed = await _resume(client, two_workers[0], message_id, user, "0")
        middle = await _resume(client, two_workers[1], message_id, user, before[3].id or "0")
        done = await _resume(client, two_workers[0], message_id, user, after[-1].id or "0")
        stranger = await client.get(
            f"{two_workers[0]}/api/chat/stream/{message_id}", params={"user_id": "someone-else"}
        )
        unknown = await client.get(
            f"{two_workers[0]}/api/chat/stream/{uuid4()}", params={"user_id": user}
        )
    stored = await messages.get_message(fault_services.pool, UUID(message_id))
    assert stored is not None
    assert full == stored.content == LONG_ANSWER
    assert _text(replayed) == full
    assert [e.event for e in replayed][:3] == ["metadata", "route", "sources"]
    assert replayed[-1].event == "end"
    assert replayed[-1].data == after[-1].data
    assert [e.id for e in replayed if e.event != "token"][-1] == after[-1].id
    assert _text(before[:4]) + _text(middle) == full
    assert done == []
    # Someone else's answer looks exactly like one that does not exist.
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json()


async def test_a_server_killed_mid_answer_leaves_everything_consistent(
    fault_settings: Settings, fault_services: Services, fake: FakeProvider, two_workers: list[str]
) -> None:
    fake.script(LLM, text=LONG_ANSWER, config={"ttft_ms": 50, "token_delay_ms": 80})
    env = clean_environment(
        DATABASE_URL=str(fault_settings.database_url),
        PORT=str(_free_port()),
        LOG_LEVEL="warning",
        OPENROUTER_API_KEY="test-key",
        OPENROUTER_BASE_URL=fault_settings.openrouter_base_url,
        LLM_MODEL=LLM,
        ROUTER_MODEL=LLM,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=fault_settings.openai_base_url,
        EMBEDDING_DIMENSIONS="256",
        COHERE_API_KEY="test-key",
        COHERE_BASE_URL=fault_settings.cohere_base_url,
        TURN_LEASE_SECONDS="2",
        DRAFT_FLUSH_SECONDS="0.2",
        RATE_LIMIT_PER_MINUTE="0",
        CPU_THREADS="1",
    )
    user = f"u-{uuid4().hex[:6]}"
    conversation = f"crash-{user}"
    server = ServerProcess(env)
    try:
        await server.ready()
        async with httpx.AsyncClient(timeout=60) as client:
            payload = {"user_id": user, "conversation_id": conversation, "message": "Relances ?"}
            seen = await _read_until(client, server.url, payload, tokens=12)
            await asyncio.sleep(0.5)  # a draft flush or two
        server.kill()
        # Started again on the same database (same settings, same port).
        server = ServerProcess(env)
        await server.ready()
        await asyncio.sleep(3)  # the dead worker's lease (2 s) expires; the sweep runs
        async with httpx.AsyncClient(timeout=60) as client:
            fake.script(LLM, text="Réponse suivante. [1]", config={"token_delay_ms": 0})
            nxt = await _stream_to(client, server.url, user, conversation)
    finally:
        server.stop()
    streamed = _text(seen)
    rows = await _rows(fault_services, conversation)
    assert [(r["role"], r["status"]) for r in rows] == [
        ("user", "failed"),
        ("assistant", "interrupted"),
        ("user", "answered"),
        ("assistant", "complete"),
    ]
    partial = rows[1]["content"]
    assert partial
    assert streamed.startswith(partial) or partial.startswith(streamed)
    assert nxt[-1].event == "end"
    report = await audit(fault_services.pool, fault_services.graph, [conversation])
    assert report.ok, report.violations
    state = await fault_services.graph.aget_state({"configurable": {"thread_id": conversation}})
    assert [m.id for m in state.values["messages"]] == [str(r["id"]) for r in rows]


async def _stream_to(
    client: httpx.AsyncClient, url: str, user: str, conversation: str
) -> list[Event]:
    payload = {"user_id": user, "conversation_id": conversation, "message": "Et ensuite ?"}
    async with client.stream("POST", f"{url}/api/chat/stream", json=payload) as response:
        assert response.status_code == 200
        return [event async for event in read_events(response)]


async def _rows(fault_services: Services, conversation: str) -> list[dict[str, Any]]:
    async with fault_services.pool.connection() as conn:
        cur = await conn.execute(
            "select id, role, status, content from messages m where conversation_id = %s "
            "order by coalesce((select u.seq from messages u where u.reply_id = m.id), m.seq), "
            "case role when 'user' then 0 else 1 end",
            (conversation,),
        )
        return [dict(row) for row in await cur.fetchall()]


async def test_a_database_outage_answers_503_fast_and_service_comes_back_alone(
    fault_settings: Settings, knowledge_dir: Path
) -> None:
    """Postgres stopped under load: 503 in seconds (never a hang, never a 500), /health 503,
    and requests succeed again within 5 s of the database coming back, with no restart."""
    tmp_path = postgres_dir("chatbot-outage-")
    url = start_embedded(tmp_path)
    await apply_migrations(url)
    own = fault_settings.model_copy(update={"database_url": url, "db_timeout_seconds": 2.0})
    async with open_services(own) as built:
        await ingest_knowledge_base(
            built.pool, built.providers.embeddings, knowledge_dir, progress=False
        )
    statuses: list[tuple[float, int, float]] = []  # (sent at, status, duration)
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient, base: str, i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sent = time.monotonic()
            try:
                response = await client.post(
                    f"{base}/api/chat",
                    json={
                        "user_id": f"load-{i}",
                        "conversation_id": f"out-{i}-{n}",
                        "message": "Comment automatiser mes emails ?",
                    },
                )
                statuses.append((sent, response.status_code, time.monotonic() - sent))
                if response.status_code >= 400:
                    body = response.json()
                    assert set(body["error"]) == {"code", "message"}
            except httpx.HTTPError as exc:
                statuses.append((sent, -1, time.monotonic() - sent))
                del exc
            await asyncio.sleep(0.1)

    async with (
        serve_in_background(own, _free_port()) as base,
        httpx.AsyncClient(timeout=30) as client,
    ):
        workers = [asyncio.create_task(load(client, base, i)) for i in range(4)]
        await asyncio.sleep(1.5)
        stop_embedded(tmp_path)
        stopped_at = time.monotonic()
        await asyncio.sleep(1.0)
        health_down = await client.get(f"{base}/health")
        await asyncio.sleep(3.0)
        start_embedded(tmp_path)
        back_at = time.monotonic()
        recovered_at: float | None = None
        while time.monotonic() - back_at < 15:
            probe = await client.post(
                f"{base}/api/chat",
                json={
                    "user_id": "probe",
                    "conversation_id": f"probe-{time.time_ns()}",
                    "message": "Comment automatiser mes emails ?",
                },
            )
            if probe.status_code == 200:
                recovered_at = time.monotonic()
                break
            await asyncio.sleep(0.2)
        health_up = await client.get(f"{base}/health")
        stop.set()
        await asyncio.gather(*workers)
    stop_embedded(tmp_path)
    shutil.rmtree(tmp_path, ignore_errors=True)
    during = [(s, d) for sent, s, d in statuses if stopped_at + 0.5 < sent < back_at - 0.5]
    assert during, "requests were sent during the outage"
    assert {s for s, _ in during} <= {503}, during
    assert max(d for _, d in during) < 6.0
    assert all(s != 500 and s != -1 for _, s, _ in statuses)
    assert health_down.status_code == 503
    assert recovered_at is not None
    assert recovered_at - back_at < 5.0
    assert health_up.status_code == 200


async def test_request_limits(client: httpx.AsyncClient) -> None:
    huge = {"user_id": "u", "conversation_id": "c", "message": "x" * 100_000}
    response = await client.post("/api/chat", json=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "64 Ko" in response.json()["error"]["message"]

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"user_id": "u", "conversation_id": "c", "message": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}'

    chunked = await client.post(
        "/api/chat", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    long_id = await client.post(
        "/api/chat", json={"user_id": "u" * 129, "conversation_id": "c", "message": "m"}
    )
    assert long_id.status_code == 422
    bad_chars = await client.post(
        "/api/chat", json={"user_id": "u/../x", "conversation_id": "c", "message": "m"}
    )
    assert bad_chars.status_code == 422
    too_many = await client.get(
        "/api/conversations/c/messages", params={"user_id": "u", "limit": 201}
    )
    assert too_many.status_code == 422


async def test_history_pages_back_in_conversation_order(client: httpx.AsyncClient) -> None:
    conversation = f"pages-{uuid4().hex[:6]}"
    for i in range(3):
        response = await client.post(
            "/api/chat",
            json={
                "user_id": "pager",
                "conversation_id": conversation,
                "message": f"Question {i} : comment configurer DKIM ?",
            },
        )
        assert response.status_code == 200
    seen: list[dict[str, Any]] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"user_id": "pager", "limit": 2}
        if before:
            params["before"] = before
        page = (
            await client.get(f"/api/conversations/{conversation}/messages", params=params)
        ).json()
        seen = page["messages"] + seen
        before = page["next_before"]
        if before is None:
            break
    assert [m["role"] for m in seen] == ["user", "assistant"] * 3
    assert [m["content"] for m in seen if m["role"] == "user"] == [
        f"Question {i} : comment configurer DKIM ?" for i in range(3)
    ]
    assert len({m["id"] for m in seen}) == 6


async def test_signed_identity(
    fault_settings: Settings, fault_services: Services, fake: FakeProvider
) -> None:
    secret = "widget-secret-for-tests"
    signed = fault_settings.model_copy(update={"widget_secret": SecretStr(secret)})
    user = "signed-user"
    token = hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()
    payload = {"user_id": user, "conversation_id": f"signed-{uuid4().hex[:6]}", "message": "DKIM ?"}
    async with (
        serve_in_background(signed, _free_port()) as base,
        httpx.AsyncClient(base_url=base, timeout=60) as client,
    ):
        missing = await client.post("/api/chat", json=payload)
        wrong = await client.post("/api/chat", json={**payload, "user_token": "0" * 64})
        other = await client.post(
            "/api/chat", json={**payload, "user_id": "someone", "user_token": token}
        )
        good = await client.post("/api/chat", json={**payload, "user_token": token})
        history = await client.get(
            f"/api/conversations/{payload['conversation_id']}/messages",
            params={"user_id": user, "user_token": token},
        )
        unsigned_history = await client.get(
            f"/api/conversations/{payload['conversation_id']}/messages", params={"user_id": user}
        )
    for refused in (missing, wrong, other, unsigned_history):
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized_user"
    assert good.status_code == 200
    assert history.status_code == 200
    assert len(history.json()["messages"]) == 2


async def test_checkpoint_storage_per_turn_stays_flat(fault_services: Services) -> None:
    """With retention, bytes per turn at turn 30 are within 1.2x of those at turn 10, and the
    next turn still reads the whole history."""
    conversation = f"retention-{uuid4().hex[:6]}"
    runner = fault_services.turns
    runner._keep_turns = 3  # the setting CHECKPOINT_KEEP_TURNS, small for the test
    per_turn: dict[int, float] = {}
    try:
        for n in range(1, 31):
            events = await runner.start(
                TurnRequest(
                    conversation_id=conversation,
                    user_id="keeper",
                    message=f"Question {n} : comment relancer un devis par email ?",
                )
            )
            assert [e async for e in events][-1].kind == "end"
            await runner.wait_idle()  # the turn prunes after its last event
            if n in (10, 30):
                per_turn[n] = await checkpoints.thread_bytes(fault_services.pool, conversation) / n
    finally:
        runner._keep_turns = fault_services.settings.checkpoint_keep_turns
    assert per_turn[30] <= 1.2 * per_turn[10], per_turn
    state = await fault_services.graph.aget_state({"configurable": {"thread_id": conversation}})
    assert len(state.values["messages"]) == 60
    kept = {
        (snapshot.metadata or {}).get("message_id")
        async for snapshot in fault_services.graph.aget_state_history(
            {"configurable": {"thread_id": conversation}}
        )
    }
    assert len(kept - {None}) == 3


async def test_a_turn_whose_saving_was_lost_is_finished_from_its_checkpoint(
    fault_services: Services,
) -> None:
    """The graph checkpointed the whole answer, then the worker died (or lost the database)
    before saving the turn: the sweep finishes it as answered with the checkpoint's answer,
    not as failed with the stale draft, and the audit finds the table and history agreeing."""
    conversation = f"saving-lost-{uuid4().hex[:6]}"
    events = [
        e
        async for e in await fault_services.turns.start(
            TurnRequest(
                conversation_id=conversation,
                user_id="lost",
                message="Comment configurer DKIM pour mes emails ?",
            )
        )
    ]
    assert events[-1].kind == "end"
    await fault_services.turns.wait_idle()
    history = await messages.list_messages(fault_services.pool, conversation)
    question, answer = history
    # Undo the saving of the turn, leaving what a dead worker leaves: a running message with
    # an expired lease and the draft of the first words.
    async with fault_services.pool.connection() as conn:
        await conn.execute("delete from messages where id = %s", (answer.id,))
        await conn.execute(
            "update messages set status = 'running', "
            "lease_expires_at = now() - interval '1 second' where id = %s",
            (question.id,),
        )
    await drafts.save_many(
        fault_services.pool,
        [
            drafts.Draft(
                message_id=answer.id,
                user_message_id=question.id,
                conversation_id=conversation,
                agent=answer.agent,
                content=answer.content[:8],
            )
        ],
    )
    # Its lease expired, so the conversation's next question may have started (and died)
    # after it: the answer is no longer the checkpoint's last message.
    later = str(uuid4())
    await fault_services.graph.aupdate_state(
        {"configurable": {"thread_id": conversation}},
        {"messages": [HumanMessage("Et ensuite ?", id=later)]},
        as_node="begin_turn",
    )
    assert await sweep_orphans(fault_services.pool, fault_services.graph) >= 1
    restored = await messages.list_messages(fault_services.pool, conversation)
    assert [(m.id, m.role, m.status) for m in restored] == [
        (question.id, "user", "answered"),
        (answer.id, "assistant", "complete"),
    ]
    assert restored[1].content == answer.content
    report = await audit(fault_services.pool, fault_services.graph, [conversation])
    # Only the question this test put in the checkpoint by hand is out of place.
    assert [(v.kind, v.message_id) for v in report.violations] == [
        ("checkpoint_message_not_in_table", later)
    ]


async def test_a_partial_answer_is_kept_when_the_question_was_only_pending(
    fault_services: Services,
) -> None:
    """Killed right after the run's input was checkpointed, the question is only a pending
    write, not in the history: the repair appends the question and the partial answer, and a
    later application of the pending question replaces it in place (same id)."""
    conversation = f"pending-{uuid4().hex[:6]}"
    events = await fault_services.turns.start(
        TurnRequest(conversation_id=conversation, user_id="p", message="Comment configurer DKIM ?")
    )
    assert [e async for e in events][-1].kind == "end"
    await fault_services.turns.wait_idle()
    question_id, reply_id = str(uuid4()), str(uuid4())
    repaired = await append_interrupted_answer(
        fault_services.graph,
        conversation_id=conversation,
        user_message_id=question_id,
        reply_id=reply_id,
        agent="audrey",
        content="Pour DKIM, ",
        question="Et SPF ?",
    )
    assert repaired
    config: RunnableConfig = {"configurable": {"thread_id": conversation}}
    history = (await fault_services.graph.aget_state(config)).values["messages"]
    assert [(type(m), m.id, m.text) for m in history[-2:]] == [
        (HumanMessage, question_id, "Et SPF ?"),
        (AIMessage, reply_id, "Pour DKIM, "),
    ]
    await fault_services.graph.aupdate_state(
        config, {"messages": [HumanMessage("Et SPF ?", id=question_id)]}, as_node="audrey"
    )
    again = (await fault_services.graph.aget_state(config)).values["messages"]
    assert [m.id for m in again] == [m.id for m in history]
    # Without the question's text nothing can be placed: nothing is written.
    assert not await append_interrupted_answer(
        fault_services.graph,
        conversation_id=conversation,
        user_message_id=str(uuid4()),
        reply_id=str(uuid4()),
        agent="audrey",
        content="x",
    )


async def test_the_audit_finds_every_kind_of_broken_promise(
    data_dir: Path, fault_settings: Settings, knowledge_dir: Path
) -> None:
    """A database corrupted on purpose: the audit names each problem; a clean one passes."""
    url = await fresh_database(data_dir, "audit")
    corrupted = fault_settings.model_copy(update={"database_url": url})
    async with open_services(corrupted) as built:
        good = f"good-{uuid4().hex[:6]}"
        events = await built.turns.start(
            TurnRequest(conversation_id=good, user_id="a", message="Comment configurer DKIM ?")
        )
        assert [e async for e in events][-1].kind == "end"
        clean = await audit(built.pool, built.graph)
        assert clean.ok, clean.violations
        async with built.pool.connection() as conn:
            # A turn stuck forever, an answer nobody asked for, an answered question without
            # its answer, and a table that lost a message the checkpoint has.
            await conn.execute(
                "insert into messages (id, conversation_id, role, content, status, reply_id) "
                "values (%s, %s, 'user', 'stuck?', 'running', %s)",
                (uuid4(), good, uuid4()),
            )
            await conn.execute(
                "insert into messages (id, conversation_id, role, content, status, agent) "
                "values (%s, %s, 'assistant', 'orphan', 'complete', 'audrey')",
                (uuid4(), good),
            )
            await conn.execute(
                "update messages set content = 'edited' where conversation_id = %s "
                "and role = 'assistant' and content <> 'orphan'",
                (good,),
            )
        report = await audit(built.pool, built.graph)
    kinds = report.counts()
    assert kinds["stuck"] == 1
    assert kinds["answer_without_question"] == 1
    assert kinds["checkpoint_message_differs"] == 1


def test_compare_history_on_its_own() -> None:
    table: list[dict[str, Any]] = [
        {"id": "u1", "role": "user", "content": "q1", "status": "answered"},
        {"id": "a1", "role": "assistant", "content": "r1", "status": "complete"},
        {"id": "u2", "role": "user", "content": "q2", "status": "failed"},
        {"id": "u3", "role": "user", "content": "q3", "status": "rejected"},
        # Kept for the team while a person had the conversation: acknowledged, never routed.
        {"id": "u4", "role": "user", "content": "q4", "status": "answered", "held": True},
        {"id": "n4", "role": "notice", "content": "ack", "status": "complete"},
    ]
    agree = [HumanMessage("q1", id="u1"), AIMessage("r1", id="a1")]
    assert compare_history("c", table, agree) == []
    not_held = [{**row, "held": False} for row in table]
    assert [v.kind for v in compare_history("c", not_held, agree)] == [
        "table_message_not_in_checkpoint"
    ]
    assert compare_history("c", table, [*agree, HumanMessage("q2", id="u2")]) == []
    swapped = [AIMessage("r1", id="a1"), HumanMessage("q1", id="u1")]
    assert [v.kind for v in compare_history("c", table, swapped)] == ["order_differs"]
    missing = [HumanMessage("q1", id="u1")]
    assert [v.kind for v in compare_history("c", table, missing)] == [
        "table_message_not_in_checkpoint"
    ]
    rejected = [*agree, HumanMessage("q3", id="u3")]
    assert [v.kind for v in compare_history("c", table, rejected)] == [
        "checkpoint_message_not_in_table"
    ]
