"""Production mode through the real clients (langchain-openai, langchain-cohere) over HTTP to the
project's fake provider server, on a real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings
from devtools.fake_provider import FakeProvider, fake_provider
from graph.state import RerankInfo
from ingest.pipeline import ingest_knowledge_base
from server import serve_in_background
from services import Services, open_services
from tests.integration.conftest import _free_port, fresh_database, on_fake_provider
from tests.integration.sse import read_events, stream_chat
from turns.events import TurnEvent
from turns.runner import TurnRequest

PRIMARY, FALLBACK, ROUTER = "primary/model", "fallback/model", "router/model"
PRICES = {PRIMARY: {"input": 1.0, "output": 2.0}, FALLBACK: {"input": 3.0, "output": 4.0}}


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh_script(fake: FakeProvider) -> None:
    fake.reset()


@pytest.fixture(scope="module")
async def prod_settings(fake: FakeProvider, data_dir: Path, knowledge_dir: Path) -> Settings:
    return on_fake_provider(
        fake,
        await fresh_database(data_dir, "production"),
        knowledge_dir,
        llm=PRIMARY,
        router=ROUTER,
        rate_limit_per_minute=1000,
        llm_fallback_models=[FALLBACK],
        router_timeout_seconds=1.0,
        llm_first_token_timeout_seconds=2.0,
        llm_prices=PRICES,
        rerank_timeout_seconds=1.0,
    )


@pytest.fixture(scope="module")
async def prod(prod_settings: Settings, knowledge_dir: Path) -> AsyncIterator[Services]:
    async with open_services(prod_settings) as services:
        await ingest_knowledge_base(
            services.pool, services.providers.embeddings, knowledge_dir, progress=False
        )
        yield services


async def turn(services: Services, message: str, conversation: str) -> list[TurnEvent]:
    events = await services.turns.start(
        TurnRequest(conversation_id=conversation, user_id="prod-user", message=message)
    )
    return [event async for event in events]


def by_kind(events: list[TurnEvent], kind: str) -> list[dict[str, Any]]:
    return [e.data() for e in events if e.kind == kind]


async def stored_answer(services: Services, conversation: str) -> dict[str, Any]:
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "select content, agent, status, model, metadata from messages where conversation_id = %s and role = 'assistant' order by created_at desc limit 1",
            (conversation,),
        )
        row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def test_providers_are_the_production_ones(prod: Services) -> None:
    assert prod.settings.mode == "production"
    assert prod.providers.describe() == {
        "embeddings": "openai/text-embedding-3-small",
        "router": f"llm/{ROUTER}",
        "retriever": "PostgresRetriever",
        "reranker": "cohere/rerank-multilingual-v3.0",
        "generator": f"openrouter/{PRIMARY}",
    }


async def test_llm_router_decides_and_generator_streams_in_order(
    prod: Services, fake: FakeProvider
) -> None:
    fake.script(
        ROUTER, decision={"route": "carole", "confidence": 0.93, "reason": "SECRET-ROUTER-REASON"}
    )
    fake.script(
        PRIMARY,
        text="Voici un reel en trois temps : accroche, valeur, appel à l'action [1].",
        # Paced like a model, so tokens are not merged for a reader that keeps up.
        config={"token_delay_ms": 5},
    )
    events = await turn(prod, "Aide-moi à créer un reel viral sur Instagram", "prod-stream")
    route = by_kind(events, "route")[0]
    assert (route["agent"], route["router"], route["reason"]) == (
        "carole",
        f"llm/{ROUTER}",
        "SECRET-ROUTER-REASON",
    )
    tokens = [e["text"] for e in by_kind(events, "token")]
    assert len(tokens) > 5
    assert (
        "".join(tokens) == "Voici un reel en trois temps : accroche, valeur, appel à l'action [1]."
    )
    assert all("SECRET-ROUTER-REASON" not in t for t in tokens)
    end = by_kind(events, "end")[0]
    assert end["model"] == f"openrouter/{PRIMARY}"
    assert end["llm"] is True
    router_calls = fake.calls("/v1/chat/completions")
    assert [c["model"] for c in router_calls] == [ROUTER, PRIMARY]
    assert router_calls[0]["stream"] is False
    assert router_calls[1]["stream"] is True
    assert "json_schema" in str(router_calls[0]["body"].get("response_format"))
    # The passages reach the generator fenced as data, and the persona is Carole's.
    system = router_calls[1]["body"]["messages"][0]["content"]
    assert "Tu es Carole" in system
    assert "<documents>\n[1]" in system


@pytest.mark.parametrize("fault", ["500", "429", "malformed", "timeout"])
async def test_primary_failure_before_content_falls_back(
    prod: Services, fake: FakeProvider, fault: str
) -> None:
    fake.script(PRIMARY, always=fault)
    events = await turn(
        prod, "Comment automatiser mes emails de bienvenue ?", f"prod-fallback-{fault}"
    )
    end = by_kind(events, "end")[0]
    assert end["model"] == f"openrouter/{FALLBACK}"
    assert [c["model"] for c in fake.calls("/v1/chat/completions")][-2:] == [PRIMARY, FALLBACK]


async def test_primary_500_falls_back_and_records_the_serving_model(
    prod: Services, fake: FakeProvider
) -> None:
    fake.script(PRIMARY, always="500")
    events = await turn(prod, "Comment automatiser mes emails de bienvenue ?", "prod-fallback")
    end = by_kind(events, "end")[0]
    assert end["model"] == f"openrouter/{FALLBACK}"
    stored = await stored_answer(prod, "prod-fallback")
    assert stored["status"] == "complete"
    assert stored["model"] == f"openrouter/{FALLBACK}"
    assert "500" in stored["metadata"]["fallbacks"][0]
    assert [c["model"] for c in fake.calls("/v1/chat/completions")][-2:] == [PRIMARY, FALLBACK]


async def test_failure_after_the_first_token_interrupts_without_fallback(
    prod: Services, fake: FakeProvider
) -> None:
    fake.script(PRIMARY, faults=["cut:3"])
    events = await turn(prod, "Comment automatiser mes emails de bienvenue ?", "prod-cut")
    kinds = [e.kind for e in events]
    assert kinds[-1] == "error"
    assert "end" not in kinds
    error = by_kind(events, "error")[0]
    assert error["code"] == "generation_interrupted"
    assert error["retryable"] is True
    partial = "".join(e["text"] for e in by_kind(events, "token"))
    stored = await stored_answer(prod, "prod-cut")
    assert stored["status"] == "interrupted"
    assert stored["content"] == partial
    assert partial
    assert stored["model"] == f"openrouter/{PRIMARY}"
    assert FALLBACK not in [c["model"] for c in fake.calls("/v1/chat/completions")]


async def test_cohere_rerank_reorders_candidates(prod: Services, fake: FakeProvider) -> None:
    await turn(prod, "Quelle durée et quel audio pour un reel Instagram ?", "prod-rerank")
    state = (await prod.graph.aget_state({"configurable": {"thread_id": "prod-rerank"}})).values
    assert state["rerank_info"] == RerankInfo(reranker="cohere/rerank-multilingual-v3.0")
    scores = [p.rerank_score for p in state["passages"]]
    assert scores == sorted(scores, reverse=True)
    assert len(scores) == prod.context.rerank_top_n
    candidates = [p.id for p in state["candidates"][state["route"].route]]
    assert [p.id for p in state["passages"]] != candidates[: len(scores)]
    assert fake.calls("/v2/rerank")


async def test_rerank_failure_keeps_retrieval_order_marked_degraded(
    prod: Services, fake: FakeProvider
) -> None:
    fake.script("rerank-multilingual-v3.0", always="500")
    events = await turn(prod, "Comment configurer DKIM ?", "prod-rerank-down")
    assert by_kind(events, "sources")[0]["degraded"] is True
    assert by_kind(events, "end")
    stored = await stored_answer(prod, "prod-rerank-down")
    assert stored["metadata"]["rerank"]["degraded"] is True


async def test_router_timeout_falls_back_to_the_embedding_router(
    prod: Services, fake: FakeProvider
) -> None:
    fake.script(ROUTER, always="timeout")
    events = await turn(
        prod, "Comment automatiser mes emails de bienvenue ?", "prod-router-timeout"
    )
    route = by_kind(events, "route")[0]
    assert route["agent"] == "audrey"
    assert route["reason"].startswith("LLM router failed (timeout), embedding router:")
    assert route["router"] == f"llm/{ROUTER} -> embedding/e5-logreg"
    assert by_kind(events, "end")


async def test_cost_is_stored_and_sent(prod: Services, fake: FakeProvider) -> None:
    events = await turn(prod, "Comment automatiser mes emails de bienvenue ?", "prod-cost")
    usage = by_kind(events, "end")[0]["usage"]
    assert usage["input_tokens"] > 0
    assert usage["output_tokens"] > 0
    expected = (usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1_000_000
    assert usage["cost_usd"] == pytest.approx(expected)
    stored = await stored_answer(prod, "prod-cost")
    assert stored["metadata"]["usage"] == usage


async def test_embeddings_use_the_real_client_without_tiktoken(
    fake: FakeProvider, prod: Services
) -> None:
    question = "Quels enregistrements DNS pour authentifier mon domaine d'envoi ?"
    events = await turn(prod, question, "prod-embed")
    assert by_kind(events, "end")
    calls = fake.calls("/v1/embeddings")
    assert [c["body"]["input"] for c in calls] == [[question]]
    assert calls[0]["body"]["dimensions"] == 256
    # The openai SDK asks for base64 unless told otherwise; the fake answers it like OpenAI.
    assert calls[0]["body"].get("encoding_format") == "base64"


async def test_seed_calls_over_http_in_production_mode(
    prod_settings: Settings, prod: Services, fake: FakeProvider
) -> None:
    fake.script(config={"token_delay_ms": 5})  # paced like a model: one event per token
    async with (
        serve_in_background(prod_settings, _free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        health = (await http.get("/health")).json()
        assert health["mode"] == "production"
        assert health["llm"] is True
        audrey = await http.post(
            "/api/chat",
            json={
                "user_id": "test-migration",
                "conversation_id": "p-conv-1",
                "message": "Comment automatiser mes emails de bienvenue?",
                "timestamp": "2025-11-03T12:00:00Z",
            },
        )
        assert audrey.json()["agent"] == "audrey"
        assert audrey.json()["llm"] is True
        events = await stream_chat(
            http,
            {
                "user_id": "test-migration",
                "conversation_id": "p-conv-2",
                "message": "Aide-moi à créer un reel viral sur Instagram",
            },
        )
        assert events[1].data["agent"] == "carole"
        assert [e.event for e in events][-1] == "end"
        assert [e.event for e in events].count("token") > 5


async def test_heartbeat_while_waiting_and_a_client_that_leaves_mid_answer(
    prod_settings: Settings, prod: Services, fake: FakeProvider
) -> None:
    """A slow first token gets `: ping` comments (nginx keeps the connection); a widget closed
    after the first token does not cancel the answer: it is finished and saved."""
    text = "Un premier point. Un deuxième point. Un troisième point. Un dernier point [1]."
    fake.script(ROUTER, decision={"route": "audrey", "confidence": 0.9, "reason": "emails"})
    fake.script(PRIMARY, text=text)
    fake.script(config={"ttft_ms": 1200, "token_delay_ms": 100})
    settings = prod_settings.model_copy(update={"sse_ping_seconds": 0.3})
    comments: list[str] = []
    seen: list[str] = []
    async with (
        serve_in_background(settings, _free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
        http.stream(
            "POST",
            "/api/chat/stream",
            json={"user_id": "u", "conversation_id": "prod-leaves", "message": "Mes emails ?"},
        ) as response,
    ):
        async for event in read_events(response, comments):
            seen.append(event.event)
            if event.event == "token":
                break  # the widget is closed here
    assert "token" in seen
    assert "end" not in seen
    assert any(c.startswith(": ping") for c in comments), comments
    row = None
    for _ in range(100):
        async with prod.pool.connection() as conn:
            cur = await conn.execute(
                "select content, status from messages where conversation_id = 'prod-leaves' "
                "and role = 'assistant'"
            )
            row = await cur.fetchone()
        if row is not None:
            break
        await asyncio.sleep(0.1)
    assert row is not None, "the answer was not saved after the client left"
    assert (row["status"], row["content"]) == ("complete", text)
