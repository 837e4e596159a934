"""The graph alone: in-memory saver and retriever, bundled embeddings, no database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.memory import InMemorySaver

from graph.builder import build_graph
from graph.context import Context
from graph.providers import Providers
from graph.providers.composer import ExtractiveComposer
from graph.providers.embeddings import EmbeddingCache
from graph.providers.rerank import SentenceReranker
from graph.providers.retriever import InMemoryRetriever
from graph.providers.routing import EmbeddingRouter
from graph.state import AgentOwner, Passage, RouteDecision, Specialist
from graph.turns import turn_input

DOCS: list[tuple[AgentOwner, str, str]] = [
    (
        "audrey",
        "Séquence de bienvenue",
        "Une séquence de bienvenue compte 3 à 5 emails sur 7 à 10 jours. "
        "Le premier email part immédiatement après l'inscription.",
    ),
    (
        "audrey",
        "Délivrabilité",
        "Configurez SPF, DKIM et DMARC avant d'envoyer votre première campagne. "
        "Un domaine authentifié arrive moins souvent dans les spams.",
    ),
    (
        "carole",
        "Reels",
        "Un reel efficace accroche dans les trois premières secondes. "
        "Gardez vos reels entre 7 et 15 secondes pour maximiser le taux de visionnage.",
    ),
    (
        "shared",
        "Contacter l'équipe",
        "Pour joindre un membre de l'équipe, écrivez à benoit@lagencedescopines.com. "
        "Nous répondons sous 24 heures ouvrées.",
    ),
]


async def memory_passages(embeddings: EmbeddingCache) -> InMemoryRetriever:
    rows = []
    for i, (owner, title, text) in enumerate(DOCS):
        vector = await embeddings.query(text)
        rows.append(
            (
                Passage(
                    id=i + 1, content=text, source=f"{owner}:{i}", title=title, agent_owner=owner
                ),
                vector,
            )
        )
    return InMemoryRetriever(rows)


class MeetingRouter:
    """Cannot answer until retrieval has started: proves the two run concurrently."""

    name = "test/meeting"

    def __init__(
        self,
        inner: EmbeddingRouter,
        retrieval_started: asyncio.Event,
        routing_started: asyncio.Event,
    ):
        self.inner = inner
        self.retrieval_started = retrieval_started
        self.routing_started = routing_started
        self.calls = 0

    async def warm(self) -> None:
        await self.inner.warm()

    async def route(
        self, message: str, previous: Specialist | None, history: Sequence[AnyMessage] = ()
    ) -> RouteDecision:
        self.calls += 1
        self.routing_started.set()
        await asyncio.wait_for(self.retrieval_started.wait(), timeout=5)
        return await self.inner.route(message, previous, history)


class MeetingRetriever:
    def __init__(
        self,
        inner: InMemoryRetriever,
        retrieval_started: asyncio.Event,
        routing_started: asyncio.Event,
    ):
        self.inner = inner
        self.retrieval_started = retrieval_started
        self.routing_started = routing_started

    async def search(
        self, embedding: Any, text: str, agents: Sequence[AgentOwner], k: int
    ) -> list[Passage]:
        self.retrieval_started.set()
        await asyncio.wait_for(self.routing_started.wait(), timeout=5)
        return await self.inner.search(embedding, text, agents, k)


class BrokenReranker:
    name = "test/broken"

    async def rerank(self, query: str, passages: Sequence[Passage], top_n: int) -> list[Passage]:
        raise RuntimeError("reranker down")


@pytest.fixture
async def providers(embeddings: EmbeddingCache, router: EmbeddingRouter) -> Providers:
    return Providers(
        embeddings=embeddings,
        router=router,
        retriever=await memory_passages(embeddings),
        reranker=SentenceReranker(embeddings),
        composer=ExtractiveComposer(embeddings),
    )


async def run_turn(
    graph: Any, context: Context, thread: str, message: str, forced: RouteDecision | None = None
) -> tuple[list[str], list[str], dict[str, Any]]:
    tokens: list[str] = []
    nodes: list[str] = []
    async for mode, chunk in graph.astream(
        turn_input(message, uuid4(), uuid4(), forced),
        {"configurable": {"thread_id": thread}},
        context=context,
        stream_mode=["updates", "custom"],
    ):
        if mode == "custom":
            tokens.append(chunk["token"])
        else:
            nodes.extend(chunk)
    state = await graph.aget_state({"configurable": {"thread_id": thread}})
    return tokens, nodes, state.values


async def test_router_and_retrieval_run_concurrently(
    providers: Providers, router: EmbeddingRouter
) -> None:
    retrieval_started, routing_started = asyncio.Event(), asyncio.Event()
    meeting = Providers(
        embeddings=providers.embeddings,
        router=MeetingRouter(router, retrieval_started, routing_started),
        retriever=MeetingRetriever(providers.retriever, retrieval_started, routing_started),  # type: ignore[arg-type]
        reranker=providers.reranker,
        composer=providers.composer,
    )
    graph = build_graph(InMemorySaver())
    tokens, nodes, state = await run_turn(
        graph,
        Context(providers=meeting),
        "t-overlap",
        "Comment automatiser mes emails de bienvenue ?",
    )
    assert state["route"].route == "audrey"
    assert nodes[:2] in (["route", "retrieve"], ["retrieve", "route"])
    assert nodes[2:] == ["rerank", "audrey"]
    assert tokens


async def test_only_generator_tokens_are_streamed_and_cite_sources(providers: Providers) -> None:
    graph = build_graph(InMemorySaver())
    tokens, _, state = await run_turn(
        graph,
        Context(providers=providers),
        "t-tokens",
        "Combien d'emails dans une séquence de bienvenue ?",
    )
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage)
    assert answer.name == "audrey"
    assert "".join(tokens) == answer.text
    assert "3 à 5 emails" in answer.text
    assert "[1]" in answer.text
    assert state["route"].reason not in answer.text
    assert state["answer_meta"]["llm"] is False
    assert "no LLM" in state["answer_meta"]["note"]
    assert all(p.agent_owner in ("audrey", "shared") for p in state["passages"])


async def test_second_turn_sees_the_first_through_the_checkpoint(providers: Providers) -> None:
    graph = build_graph(InMemorySaver())
    context = Context(providers=providers)
    await run_turn(graph, context, "t-memory", "Comment automatiser mes emails de bienvenue ?")
    _, _, state = await run_turn(graph, context, "t-memory", "et pour le délai ?")
    assert [m.type for m in state["messages"]] == ["human", "ai", "human", "ai"]
    assert state["route"].route == "audrey"
    assert state["query"].startswith("Comment automatiser mes emails de bienvenue ?")


async def test_a_route_in_the_input_bypasses_the_router(
    providers: Providers, router: EmbeddingRouter
) -> None:
    class CountingRouter:
        name = "test/counting"
        calls = 0

        async def route(self, *args: Any, **kwargs: Any) -> RouteDecision:
            CountingRouter.calls += 1
            return await router.route(*args, **kwargs)

        async def warm(self) -> None:
            return None

    counting = Providers(
        providers.embeddings,
        CountingRouter(),
        providers.retriever,
        providers.reranker,
        providers.composer,
    )
    graph = build_graph(InMemorySaver())
    forced = RouteDecision(route="carole", confidence=1.0, reason="forced by test", router="test")
    _, _, state = await run_turn(
        graph, Context(providers=counting), "t-forced", "Comment automatiser mes emails ?", forced
    )
    assert CountingRouter.calls == 0
    assert state["messages"][-1].name == "carole"


async def test_reranker_failure_keeps_retrieval_order_and_marks_degraded(
    providers: Providers,
) -> None:
    broken = Providers(
        providers.embeddings,
        providers.router,
        providers.retriever,
        BrokenReranker(),
        providers.composer,
    )
    graph = build_graph(InMemorySaver())
    tokens, _, state = await run_turn(
        graph, Context(providers=broken, rerank_top_n=2), "t-degraded", "Comment configurer DKIM ?"
    )
    assert state["rerank_info"]["degraded"] is True
    assert [p.id for p in state["passages"]] == [p.id for p in state["candidates"]["audrey"][:2]]
    assert tokens


async def test_escalation_says_a_person_will_follow_up(providers: Providers) -> None:
    graph = build_graph(InMemorySaver())
    _, _, state = await run_turn(
        graph, Context(providers=providers), "t-escalate", "Je veux être remboursée de ma formation"
    )
    answer = state["messages"][-1]
    assert answer.name == "escalate"
    assert "personne de l'équipe" in answer.text
    assert "benoit@lagencedescopines.com" in answer.text
