"""The graph as `langgraph dev` / LangGraph Studio load it (named in langgraph.json).

Studio supplies its own checkpointer and cannot pass a Context object, so this factory opens
the same services as the server (settings from the environment / .env) and compiles the graph
with them as its default context.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph
from graph.context import Context
from graph.services import open_services
from graph.settings import get_settings
from graph.state import ChatState


@asynccontextmanager
async def make_graph(
    config: RunnableConfig,
) -> AsyncIterator[CompiledStateGraph[ChatState, Context, ChatState, ChatState]]:
    """Yield the chat graph with the process's providers as its default context."""
    async with open_services(get_settings()) as services:
        yield build_graph(default_context=services.context)


__all__: list[Any] = ["make_graph"]
