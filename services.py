"""The composition root: everything a process needs, opened once and closed on exit.

The server's lifespan, the CLI's commands, LangGraph Studio's factory and the tests all go
through `open_services`, so they build the same things the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from core.settings import Settings
from graph.builder import ChatGraph, build_graph
from graph.checkpointer import make_checkpointer
from graph.context import Context
from ingest.pipeline import flatten, ingest_knowledge_base
from providers import Providers, make_providers
from store import documents
from store.health import DatabaseProbe
from store.migrations import apply_migrations
from store.postgres import Pool, open_pool, resolve_database_url
from turns.handoff import HandoffDesk, open_handoff_desk
from turns.recovery import keep_sweeping
from turns.runner import TurnRunner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """The process's long-lived objects, built once."""

    settings: Settings
    database_url: str
    pool: Pool
    providers: Providers
    graph: ChatGraph
    context: Context
    turns: TurnRunner
    handoffs: HandoffDesk
    probe: DatabaseProbe


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[tuple[str, Pool]]:
    """Resolve the database, apply migrations, open the pool; close it on exit."""
    # Starting the embedded server spawns and waits on a process: off the event loop.
    url = await asyncio.to_thread(resolve_database_url, settings)
    await apply_migrations(url)
    pool = await open_pool(url, settings.db_pool_max_size, settings.db_timeout_seconds)
    try:
        yield url, pool
    finally:
        await pool.close()


async def sync_knowledge_base(settings: Settings, pool: Pool, providers: Providers) -> None:
    """Bring the index in line with KNOWLEDGE_DIR, one process at a time.

    Ingestion is idempotent (unchanged files are skipped by their hash), so this runs at every
    start: the first one ingests everything, a start after an interrupted first ingestion
    finishes it, and an edited or deleted document is picked up.
    """
    async with documents.exclusive_ingestion(pool):
        empty = not await documents.count_by_agent(pool)
        if empty:
            log.info("empty knowledge base: ingesting %s", settings.knowledge_dir)
        reports = await ingest_knowledge_base(
            pool, providers.embeddings, settings.knowledge_dir, progress=empty
        )
        total = flatten(reports.values())
        if total.added or total.updated or total.removed:
            log.info("knowledge base: %s", total.summary())


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Everything the server needs, with the sample knowledge ingested on an empty embedded DB."""
    async with open_database(settings) as (url, pool):
        providers = await make_providers(settings, pool)
        # Fail at start, with the fix in the message, rather than on every search.
        await documents.check_embedding_compatible(
            pool, providers.embeddings.name, providers.embeddings.dimensions
        )
        if settings.ingest_on_start and settings.embedded_database:
            await sync_knowledge_base(settings, pool, providers)
        checkpointer = await make_checkpointer(pool)
        graph = build_graph(checkpointer=checkpointer, providers=providers)
        context = Context(
            retrieve_k=settings.retrieve_k,
            rerank_top_n=settings.rerank_top_n,
            providers=providers,
        )
        async with open_handoff_desk(settings, pool) as handoffs:
            turns = TurnRunner(
                pool,
                graph,
                context,
                multitask=settings.multitask,
                lease_seconds=settings.turn_lease_seconds,
                max_running=settings.running_turns,
                draft_seconds=settings.draft_flush_seconds,
                keep_turns=settings.checkpoint_keep_turns,
                handoffs=handoffs,
            )
            # Turns a killed worker left behind (after their lease expired), now and from then on.
            sweeper = asyncio.create_task(
                keep_sweeping(pool, graph, period=settings.turn_lease_seconds)
            )
            try:
                yield Services(
                    settings,
                    url,
                    pool,
                    providers,
                    graph,
                    context,
                    turns,
                    handoffs,
                    DatabaseProbe(pool),
                )
            finally:
                sweeper.cancel()
                await turns.wait_idle()
                await turns.close()
                await providers.aclose()
