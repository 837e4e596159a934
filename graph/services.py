"""Start-up and shut-down of everything a process needs: database, providers, graph.

The server's lifespan and the CLI's commands both go through `open_services`, so they build
the same things the same way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from graph.builder import build_graph
from graph.checkpointer import make_checkpointer
from graph.context import Context
from graph.ingest import flatten, ingest_knowledge_base
from graph.providers import Providers, make_providers
from graph.settings import Settings
from graph.state import ChatState
from graph.store import documents
from graph.store.postgres import Pool, apply_migrations, open_pool, resolve_database_url
from graph.turns import TurnRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The process's long-lived objects, built once."""

    settings: Settings
    database_url: str
    pool: Pool
    providers: Providers
    graph: CompiledStateGraph[ChatState, Context, Any, Any]
    context: Context
    turns: TurnRunner


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[tuple[str, Pool]]:
    """Resolve the database, apply migrations, open the pool; close it on exit."""
    url = resolve_database_url(settings)
    await apply_migrations(url)
    pool = await open_pool(url, settings.db_pool_max_size)
    try:
        yield url, pool
    finally:
        await pool.close()


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Everything the server needs, with the sample knowledge ingested on an empty embedded DB."""
    async with open_database(settings) as (url, pool):
        providers = await make_providers(settings, pool)
        # Fail at start, with the fix in the message, rather than on every search.
        await documents.check_embedding_compatible(
            pool, providers.embeddings.name, providers.embeddings.dimensions
        )
        first_start = settings.ingest_on_start and settings.embedded_database
        if first_start and not await documents.count_by_agent(pool):
            log.info("empty knowledge base: ingesting %s", settings.knowledge_dir)
            reports = await ingest_knowledge_base(
                pool, providers.embeddings, settings.knowledge_dir
            )
            log.info("knowledge base: %s", flatten(reports.values()).summary())
        checkpointer = await make_checkpointer(pool)
        graph = build_graph(checkpointer=checkpointer)
        context = Context(
            providers=providers,
            retrieve_k=settings.retrieve_k,
            rerank_top_n=settings.rerank_top_n,
        )
        turns = TurnRunner(pool, graph, providers, context)
        try:
            yield Services(settings, url, pool, providers, graph, context, turns)
        finally:
            await turns.wait_idle()
