"""LangGraph's Postgres checkpointer on the application's own pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from graph.state import STATE_MODELS
from store.postgres import Pool


def make_serializer() -> JsonPlusSerializer:
    """msgpack with an explicit allow-list: our state's models load, nothing else does."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_MODELS))


class PooledPostgresSaver(AsyncPostgresSaver):
    """`AsyncPostgresSaver` made for many concurrent turns on a pool.

    - No process-wide lock: upstream serialises every checkpoint read and write of the process
      behind one `asyncio.Lock`, which a single shared connection needs but a pool does not.
      Here each operation takes its own pooled connection, so turns of different conversations
      write in parallel (turns of one conversation never overlap: see `store/turn_queue.py`).
    - No thread hop while a connection is held: upstream `aput` takes a connection, then waits
      for the default executor to serialise the blobs. Under load the executor's queue grows,
      every pooled connection ends up waiting on it, and requests time out on the pool. Here
      values are serialised first, on the loop (msgpack of one turn's state is quick), then the
      connection is taken only for the queries.
    """

    def __init__(self, pool: Pool, serde: JsonPlusSerializer) -> None:
        super().__init__(pool, serde=serde)
        self._pool = pool

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        configurable = config["configurable"].copy()
        thread_id = configurable.pop("thread_id")
        checkpoint_ns = configurable.pop("checkpoint_ns")
        parent_id = configurable.pop("checkpoint_id", None)
        copy = checkpoint.copy()
        copy["channel_values"] = copy["channel_values"].copy()
        # Primitive values stay in the checkpoint row; everything else goes to blobs.
        blob_values: dict[str, Any] = {}
        for key, value in checkpoint["channel_values"].items():
            if isinstance(value, _DeltaSnapshot):
                blob_values[key] = copy["channel_values"].pop(key)
                copy["channel_values"][key] = True
            elif not (value is None or isinstance(value, str | int | float | bool)):
                blob_values[key] = copy["channel_values"].pop(key)
        blob_versions = {k: v for k, v in new_versions.items() if k in blob_values}
        blobs = (
            self._dump_blobs(thread_id, checkpoint_ns, blob_values, blob_versions)
            if blob_versions
            else []
        )
        row = (
            thread_id,
            checkpoint_ns,
            checkpoint["id"],
            parent_id,
            Jsonb(copy),
            Jsonb(get_serializable_checkpoint_metadata(config, metadata)),
        )
        async with self._cursor(pipeline=True) as cur:
            if blobs:
                await cur.executemany(self.UPSERT_CHECKPOINT_BLOBS_SQL, blobs)
            await cur.execute(self.UPSERT_CHECKPOINTS_SQL, row)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        query = (
            self.UPSERT_CHECKPOINT_WRITES_SQL
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else self.INSERT_CHECKPOINT_WRITES_SQL
        )
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        async with self._cursor(pipeline=True) as cur:
            await cur.executemany(query, params)

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
