"""The generator's chunks handed to the host directly (`TracedRun(on_chunk=...)`): around
LangGraph's stream, in order with the signals it streams before them, none read twice."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from core.domain import RouteDecision
from graph.context import Context
from graph.state import ChatState, StreamChunk
from turns.stream import Routed, Signal, Token, TracedRun


async def route(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    return {"route": RouteDecision(route="audrey", confidence=1.0, reason="test")}


async def audrey(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    # Written in the node's first step, before it awaits anything: the earliest a token can
    # come, while the route's update still waits in LangGraph's stream.
    write = runtime.context.token_sink or runtime.stream_writer
    for text in ("Bon", "jour", " !"):
        write(StreamChunk(token=text))
    return {}


def graph() -> Any:
    builder = StateGraph(ChatState, context_schema=Context)
    builder.add_node("route", route)
    builder.add_node("audrey", audrey)
    builder.add_edge(START, "route")
    builder.add_edge("route", "audrey")
    builder.add_edge("audrey", END)
    return builder.compile()


async def run(direct: bool) -> list[tuple[str, Signal]]:
    """Every signal of a run, with the way it came: `direct` (on_chunk) or `stream`."""
    seen: list[tuple[str, Signal]] = []
    traced = TracedRun(
        graph(),
        {"messages": [HumanMessage("Bonjour")]},
        {},
        Context(),
        on_chunk=(lambda signal: seen.append(("direct", signal))) if direct else None,
    )
    async for signal in traced.signals():
        seen.append(("stream", signal))
    return seen


def shape(seen: list[tuple[str, Signal]]) -> list[str]:
    return [s.text if isinstance(s, Token) else type(s).__name__ for _, s in seen]


async def test_direct_tokens_skip_the_stream_and_keep_their_place() -> None:
    through_stream = await run(direct=False)
    direct = await run(direct=True)
    assert shape(through_stream) == ["Routed", "Bon", "jour", " !"]
    assert shape(direct) == shape(through_stream)
    assert [way for way, _ in direct] == ["stream", "direct", "direct", "direct"]
    assert isinstance(direct[0][1], Routed)
