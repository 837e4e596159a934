"""The graph alone: in-memory saver and retriever, bundled embeddings, no database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import uuid4

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from core.domain import AgentOwner, Passage, RouteDecision, RouteQuery
from graph.builder import build_graph
from graph.context import Context
from graph.state import PER_TURN_FIELDS, ChatState, turn_input
from nodes.begin_turn import begin_turn
from providers import Providers
from providers.embeddings import EmbeddingCache
from providers.generator import ExtractiveGenerator
from providers.rerank import SentenceReranker
from providers.retriever import InMemoryRetriever
from providers.router import ClassifierRouter
from store.documents import Scope

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
        inner: ClassifierRouter,
        retrieval_started: asyncio.Event,
        routing_started: asyncio.Event,
    ):
        self.inner = inner
        self.retrieval_started = retrieval_started
        self.routing_started = routing_started
        self.calls = 0

    async def warm(self) -> None:
        await self.inner.warm()

    async def route(self, query: RouteQuery) -> RouteDecision:
        self.calls += 1
        self.routing_started.set()
        await asyncio.wait_for(self.retrieval_started.wait(), timeout=5)
        return await self.inner.route(query)


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
        self, embedding: Any, text: str, scopes: Mapping[Scope, Sequence[AgentOwner]], k: int
    ) -> dict[Scope, list[Passage]]:
        self.retrieval_started.set()
        await asyncio.wait_for(self.routing_started.wait(), timeout=5)
        return await self.inner.search(embedding, text, scopes, k)


class BrokenReranker:
    name = "test/broken"

    async def rerank(self, query: str, passages: Sequence[Passage], top_n: int) -> list[Passage]:
        raise RuntimeError("reranker down")


@pytest.fixture
async def providers(embeddings: EmbeddingCache, router: ClassifierRouter) -> Providers:
    return Providers(
        embeddings=embeddings,
        router=router,
        retriever=await memory_passages(embeddings),
        reranker=SentenceReranker(embeddings),
        generator=ExtractiveGenerator(embeddings),
    )


async def run_turn(
    graph: Any, context: Context, thread: str, message: str, forced: RouteDecision | None = None
) -> tuple[list[str], list[str], dict[str, Any]]:
    tokens: list[str] = []
    nodes: list[str] = []
    async for mode, chunk in graph.astream(
        turn_input(message, message_id=str(uuid4()), reply_id=str(uuid4()), route=forced),
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
    providers: Providers, router: ClassifierRouter
) -> None:
    retrieval_started, routing_started = asyncio.Event(), asyncio.Event()
    meeting = Providers(
        embeddings=providers.embeddings,
        router=MeetingRouter(router, retrieval_started, routing_started),
        retriever=MeetingRetriever(providers.retriever, retrieval_started, routing_started),  # type: ignore[arg-type]
        reranker=providers.reranker,
        generator=providers.generator,
    )
    graph = build_graph(InMemorySaver())
    tokens, nodes, state = await run_turn(
        graph,
        Context(providers=meeting),
        "t-overlap",
        "Comment automatiser mes emails de bienvenue ?",
    )
    assert state["route"].route == "audrey"
    assert nodes[0] == "begin_turn"
    assert nodes[1:3] in (["route", "retrieve"], ["retrieve", "route"])
    assert nodes[3:] == ["rerank", "audrey"]
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
    assert state["answer_meta"].llm is False
    assert "no LLM" in (state["answer_meta"].note or "")
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
    providers: Providers, router: ClassifierRouter
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
        providers.generator,
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
        providers.generator,
    )
    graph = build_graph(InMemorySaver())
    tokens, _, state = await run_turn(
        graph, Context(providers=broken, rerank_top_n=2), "t-degraded", "Comment configurer DKIM ?"
    )
    assert state["rerank_info"].degraded is True
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


async def test_a_forced_route_does_not_leak_into_the_next_turn(providers: Providers) -> None:
    graph = build_graph(InMemorySaver())
    context = Context(providers=providers)
    forced = RouteDecision(route="carole", confidence=1.0, reason="forced by test", router="test")
    await run_turn(graph, context, "t-leak", "Comment automatiser mes emails ?", forced)
    _, _, state = await run_turn(
        graph, context, "t-leak", "Comment configurer SPF, DKIM et DMARC pour mes envois ?"
    )
    assert state["route"].router == "embedding/e5-logreg"
    assert state["messages"][-1].name == "audrey"


async def test_a_host_that_sends_only_messages_gets_a_clean_turn(providers: Providers) -> None:
    """What LangGraph Studio sends: no turn options, no context; the graph carries providers."""
    graph = build_graph(InMemorySaver(), providers=providers)
    config: Any = {"configurable": {"thread_id": "t-bare"}}
    bare: Any = {"messages": [HumanMessage("Je veux être remboursée")]}
    await graph.ainvoke(bare, config)
    first = (await graph.aget_state(config)).values
    bare = {"messages": [HumanMessage("Combien d'emails dans une séquence de bienvenue ?")]}
    await graph.ainvoke(bare, config)
    second = (await graph.aget_state(config)).values
    assert first["route"].route == "escalate"
    assert second["route"].route == "audrey"
    assert second["reply_id"]
    assert second["reply_id"] != first["reply_id"]
    assert [m.name for m in second["messages"] if isinstance(m, AIMessage)] == [
        "escalate",
        "audrey",
    ]


async def test_state_edited_as_json_runs_on_with_its_types(providers: Providers) -> None:
    """What LangGraph Studio sends when a developer edits a checkpoint or fills `turn`: JSON."""
    graph = build_graph(InMemorySaver(), providers=providers)
    config: Any = {"configurable": {"thread_id": "t-json"}}
    forced = {"route": "carole", "confidence": 1.0, "reason": "studio", "router": "studio"}
    studio_input: Any = {
        "messages": [HumanMessage("Comment configurer DKIM ?")],
        "turn": {"route": forced},
    }
    await graph.ainvoke(studio_input, config)
    first = (await graph.aget_state(config)).values
    history = [snapshot async for snapshot in graph.aget_state_history(config)]
    before_persona = next(snapshot for snapshot in history if snapshot.next == ("carole",))
    edited = await graph.aupdate_state(
        before_persona.config, {"route": {**forced, "route": "audrey"}}, as_node="rerank"
    )
    await graph.ainvoke(None, edited)
    forked = (await graph.aget_state(config)).values

    assert first["route"] == RouteDecision(**forced)
    assert first["messages"][-1].name == "carole"
    assert [m.name for m in forked["messages"] if isinstance(m, AIMessage)] == ["audrey"]
    assert ChatState(**forked).route == RouteDecision(**{**forced, "route": "audrey"})


async def test_every_per_turn_field_is_reset_by_the_next_turn(providers: Providers) -> None:
    """Read from the state's definition: a field added later is covered without editing this."""
    graph = build_graph(InMemorySaver(), providers=providers)
    config: Any = {"configurable": {"thread_id": "t-reset"}}
    bare: Any = {"messages": [HumanMessage("Comment configurer DKIM ?")]}
    await graph.ainvoke(bare, config)
    before = (await graph.aget_state(config)).values
    assert set(PER_TURN_FIELDS) == {f.name for f in dataclasses.fields(ChatState)} - {
        "messages",
        "turn",
    }
    reset = await begin_turn(ChatState(**{k: v for k, v in before.items() if k != "turn"}))
    fresh = ChatState()
    for name in PER_TURN_FIELDS:
        if name == "reply_id":
            assert reset[name]
            assert reset[name] != before[name]
        else:
            assert reset[name] == getattr(fresh, name), name
            assert before[name] != getattr(fresh, name), f"{name} was not set by the first turn"


async def test_the_hand_off_reason_reaches_the_answer_metadata(providers: Providers) -> None:
    graph = build_graph(InMemorySaver())
    _, _, state = await run_turn(
        graph, Context(providers=providers), "t-handoff", "Je veux être remboursée de ma formation"
    )
    answer = state["messages"][-1]
    assert answer.response_metadata["handoff"]["reason"] == "rule: refund"
    assert state["answer_meta"].handoff.reason == "rule: refund"


async def test_a_turn_leaves_the_event_loop_only_for_cpu_work(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No step of a turn hops to the loop's default thread pool (LangGraph runs a plain
    function node or edge there): only the embeddings' own CPU executor is used."""
    loop = asyncio.get_running_loop()
    hops: list[str] = []
    run_in_executor = loop.run_in_executor

    def counted(executor: Any, func: Any, *args: Any) -> Any:
        if executor is None:
            hops.append(getattr(func, "__qualname__", repr(func)))
        return run_in_executor(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", counted)
    tokens, nodes, _ = await run_turn(
        build_graph(InMemorySaver()),
        Context(providers=providers),
        "t-no-hops",
        "Comment automatiser mes emails de bienvenue ?",
    )
    assert tokens
    assert nodes[-1] == "audrey"
    assert hops == []
