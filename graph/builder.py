"""Wire the nodes into the chat graph."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from core.domain import ROUTES, Route
from graph.context import Context
from graph.state import ChatState
from nodes.begin_turn import begin_turn
from nodes.escalate import escalate
from nodes.generate import audrey, carole
from nodes.rerank import after_rerank, rerank
from nodes.retrieve import retrieve
from nodes.route import route
from providers import Providers

Node = Callable[[ChatState, Runtime[Context]], Awaitable[dict[str, Any]]]
ChatGraph = CompiledStateGraph[ChatState, Context, ChatState, ChatState]

# One persona node per route, named after it: `after_rerank` returns the route itself.
PERSONAS: dict[Route, Node] = {"audrey": audrey, "carole": carole, "escalate": escalate}
assert tuple(PERSONAS) == ROUTES, "every route needs its persona node"


def _with_providers(node: Node, providers: Providers) -> Node:
    """The node, run with `providers` whenever the run's context does not bring its own (the
    server passes none; LangGraph Studio builds the context from a request's JSON)."""

    async def run(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        context = runtime.context if runtime.context is not None else Context()
        if context.providers is None:
            runtime = runtime.override(context=dataclasses.replace(context, providers=providers))
        return await node(state, runtime)

    run.__name__ = node.__name__
    run.__doc__ = node.__doc__
    return run


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, providers: Providers | None = None
) -> ChatGraph:
    """begin_turn → route ‖ retrieve → rerank → audrey | carole | escalate.

    `route` and `retrieve` start together; `rerank` waits for both, so a slow router costs
    max(route, retrieve), not their sum. With `providers`, runs need no context at all.
    """
    nodes: dict[str, Node] = {"route": route, "retrieve": retrieve, "rerank": rerank}
    for persona, node in PERSONAS.items():
        nodes[persona] = node
    builder = StateGraph(ChatState, context_schema=Context)
    builder.add_node("begin_turn", begin_turn)
    for name, node in nodes.items():
        # LangGraph types node callables with protocols a plain Callable alias cannot name.
        action: Any = node if providers is None else _with_providers(node, providers)
        builder.add_node(name, action)
    builder.add_edge(START, "begin_turn")
    builder.add_edge("begin_turn", "route")
    builder.add_edge("begin_turn", "retrieve")
    builder.add_edge(["route", "retrieve"], "rerank")
    builder.add_conditional_edges("rerank", after_rerank, list(PERSONAS))
    for name in PERSONAS:
        builder.add_edge(name, END)
    return builder.compile(checkpointer=checkpointer, name="chat")


# The graph's shape, for drawing and imports; runs need providers (see services.py).
graph = build_graph()
