"""Wire the nodes into the chat graph."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graph.context import Context
from graph.state import ChatState
from nodes.escalate import escalate
from nodes.generate import audrey, carole
from nodes.rerank import after_rerank, rerank
from nodes.retrieve import retrieve
from nodes.route import route

GENERATORS = ("audrey", "carole", "escalate")


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
) -> CompiledStateGraph[ChatState, Context, ChatState, ChatState]:
    """route ‖ retrieve → rerank → audrey | carole | escalate.

    `route` and `retrieve` start together; `rerank` waits for both, so a slow router costs
    max(route, retrieve), not their sum.
    """
    builder = StateGraph(ChatState, context_schema=Context)
    builder.add_node("route", route)
    builder.add_node("retrieve", retrieve)
    builder.add_node("rerank", rerank)
    builder.add_node("audrey", audrey)
    builder.add_node("carole", carole)
    builder.add_node("escalate", escalate)
    builder.add_edge(START, "route")
    builder.add_edge(START, "retrieve")
    builder.add_edge(["route", "retrieve"], "rerank")
    builder.add_conditional_edges("rerank", after_rerank, list(GENERATORS))
    for name in GENERATORS:
        builder.add_edge(name, END)
    return builder.compile(checkpointer=checkpointer, name="chat")


# For langgraph.json / LangGraph Studio, which supply their own checkpointer.
graph = build_graph()
