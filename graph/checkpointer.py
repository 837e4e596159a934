"""LangGraph's Postgres checkpointer on the application's own pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row

from graph.state import STATE_MODELS
from store.postgres import Pool


def make_serializer() -> JsonPlusSerializer:
    """msgpack with an explicit allow-list: our state's models load, nothing else does."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_MODELS))


class PooledPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` without its process-wide lock.

    The upstream saver serialises every checkpoint read and write of the process behind one
    `asyncio.Lock`, which a single shared connection needs but a pool does not: with it, 200
    concurrent turns queue their checkpoint writes one at a time. Here each operation takes its
    own pooled connection, so turns of different conversations write in parallel (turns of one
    conversation never overlap: see `store/turn_queue.py`).
    """

    def __init__(self, pool: Pool, serde: JsonPlusSerializer) -> None:
        super().__init__(pool, serde=serde)
        self._pool = pool

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with self._pool.connection() as conn:
            if pipeline and self.supports_pipeline:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif pipeline:
                async with (
                    conn.transaction(),
                    conn.cursor(binary=True, row_factory=dict_row) as cur,
                ):
                    yield cur
            else:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur


async def make_checkpointer(pool: Pool) -> AsyncPostgresSaver:
    """Checkpoints live beside the messages, keyed by thread_id = conversation_id."""
    saver = PooledPostgresSaver(pool, serde=make_serializer())
    await saver.setup()
    return saver
