"""Wire the nodes into the chat graph."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import ChatState
from nodes.escalate import escalate
from nodes.generate import audrey, carole
from nodes.rerank import after_rerank, rerank
from nodes.retrieve import retrieve
from nodes.route import route

GENERATORS = ("audrey", "carole", "escalate")


Node = Callable[[ChatState, Runtime[Context]], Awaitable[dict[str, Any]]]


def _with_default_context(node: Node, default: Context) -> Node:
    """For hosts that cannot pass a Context object (LangGraph Studio): use `default`."""

    async def run(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
        if runtime.context is None:
            runtime = runtime.override(context=default)
        return await node(state, runtime)

    run.__doc__ = node.__doc__
    return run


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    default_context: Context | None = None,
) -> CompiledStateGraph[ChatState, Context, ChatState, ChatState]:
    """route ‖ retrieve → rerank → audrey | carole | escalate.

    `route` and `retrieve` start together; `rerank` waits for both, so a slow router costs
    max(route, retrieve), not their sum.
    """
    nodes: dict[str, Node] = {
        "route": route,
        "retrieve": retrieve,
        "rerank": rerank,
        "audrey": audrey,
        "carole": carole,
        "escalate": escalate,
    }
    builder = StateGraph(ChatState, context_schema=Context)
    for name, node in nodes.items():
        # LangGraph types node callables with protocols a plain Callable alias cannot name.
        action: Any = (
            node if default_context is None else _with_default_context(node, default_context)
        )
        builder.add_node(name, action)
    builder.add_edge(START, "route")
    builder.add_edge(START, "retrieve")
    builder.add_edge(["route", "retrieve"], "rerank")
    builder.add_conditional_edges("rerank", after_rerank, list(GENERATORS))
    for name in GENERATORS:
        builder.add_edge(name, END)
    return builder.compile(checkpointer=checkpointer, name="chat")


# The graph's shape, for drawing and imports; runs need a Context (see graph/studio.py).
graph = build_graph()
