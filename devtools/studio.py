"""The graph as `langgraph dev` / LangGraph Studio load it.

`langgraph.json` names two things here, by module path so that both share this one module:

- `app`, a Starlette app without routes whose lifespan (LangGraph's custom-lifespan hook) opens
  the process's services when the dev server starts and closes them when it stops;
- `make_graph`, the factory the dev server calls for every run and every read of a thread or
  an assistant, on its event loop: it returns the graph compiled once around those services,
  and the server adds its own checkpointer and threads.

A host that runs no lifespan still works: the first call of the factory opens the services.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette

from core.settings import get_settings
from graph.builder import ChatGraph, build_graph
from services import open_services

log = logging.getLogger(__name__)


class SharedGraph:
    """The services and the compiled graph of this process, opened once and closed at exit."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._graph: ChatGraph | None = None

    async def get(self) -> ChatGraph:
        """The graph, opening the services on first use."""
        async with self._lock:
            if self._graph is None:
                started = time.perf_counter()
                # Settings read `.env`: file I/O, so off the event loop like the rest of start-up.
                settings = await asyncio.to_thread(get_settings)
                stack = AsyncExitStack()
                services = await stack.enter_async_context(open_services(settings))
                self._stack = stack
                # No checkpointer: the dev server brings its own (threads live in the server).
                self._graph = build_graph(providers=services.providers)
                log.info(
                    "chat graph ready: services opened in %.1f s (%s)",
                    time.perf_counter() - started,
                    ", ".join(
                        f"{role} {name}" for role, name in services.providers.describe().items()
                    ),
                )
            return self._graph

    async def close(self) -> None:
        """Close the services (the pool; the embedded Postgres keeps running for the next)."""
        async with self._lock:
            stack, self._stack, self._graph = self._stack, None, None
            if stack is not None:
                await stack.aclose()


shared = SharedGraph()


async def make_graph() -> ChatGraph:
    """The chat graph with the process's providers (the dev server adds its checkpointer)."""
    return await shared.get()


@asynccontextmanager
async def _lifespan(_: Starlette) -> AsyncIterator[None]:
    await shared.get()
    try:
        yield
    finally:
        await shared.close()


app = Starlette(lifespan=_lifespan)
