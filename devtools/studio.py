"""The graph as `langgraph dev` / LangGraph Studio load it (named in langgraph.json).

The dev server calls the factory for every run, on its own event loop, and brings its own
checkpointer. So the process's services (database, providers) are opened once, on first use,
and kept for the life of the process; each call only compiles the graph around them.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from langchain_core.runnables import RunnableConfig

from core.settings import get_settings
from graph.builder import ChatGraph, build_graph
from services import Services, open_services

_opened: Services | None = None
_lock = asyncio.Lock()
# Kept open until the process exits: the dev server has no shutdown hook for graphs.
_stack = AsyncExitStack()


async def shared_services() -> Services:
    """The process's services, opened by the first caller."""
    global _opened
    async with _lock:
        if _opened is None:
            _opened = await _stack.enter_async_context(open_services(get_settings()))
    return _opened


async def make_graph(config: RunnableConfig) -> ChatGraph:
    """The chat graph with the process's providers (the dev server adds its checkpointer)."""
    services = await shared_services()
    return build_graph(providers=services.providers)
