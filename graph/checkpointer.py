"""LangGraph's Postgres checkpointer on the application's own pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
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


@dataclass
class _Pending:
    """One run's checkpoint rows not yet written, in the order they were produced."""

    blobs: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoints: list[tuple[Any, ...]] = field(default_factory=list)
    writes: list[tuple[bool, list[tuple[Any, ...]]]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def take(self) -> _Pending:
        taken = _Pending(self.blobs, self.checkpoints, self.writes)
        self.blobs, self.checkpoints, self.writes = [], [], []
        return taken

    def put_back(self, rows: _Pending) -> None:
        self.blobs[:0] = rows.blobs
        self.checkpoints[:0] = rows.checkpoints
        self.writes[:0] = rows.writes

    def __bool__(self) -> bool:
        return bool(self.blobs or self.checkpoints or self.writes)


# The run whose checkpoints are being batched, if any (LangGraph's tasks inherit it).
_BATCH: ContextVar[_Pending | None] = ContextVar("checkpoint_batch", default=None)

# Upstream's upserts, one statement per table over arrays instead of one command per row.
_BLOBS_SQL = """
    INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[])
    ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
"""
_CHECKPOINTS_SQL = """
    INSERT INTO checkpoints
        (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::jsonb[], %s::jsonb[])
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id)
    DO UPDATE SET checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata
"""
_WRITES_SQL = """
    INSERT INTO checkpoint_writes
        (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, blob)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                         %s::integer[], %s::text[], %s::text[], %s::bytea[])
    ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""
_WRITES_UPSERT_SQL = (
    _WRITES_SQL
    + " DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)
_WRITES_INSERT_SQL = _WRITES_SQL + " DO NOTHING"


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column: the parameters of an `unnest` insert."""
    return [list(column) for column in zip(*rows, strict=True)]


def _final_writes(
    writes: list[tuple[bool, list[tuple[Any, ...]]]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows that one statement per kind must write to end as the writes one by one would.

    An upsert replaces a stored row, an insert leaves it: per key, the last upsert wins if any,
    else the first insert. One statement cannot hold a key twice (Postgres refuses to update a
    row twice in one command)."""
    upserts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    inserts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for upsert, rows in writes:
        for row in rows:
            key = (*row[:4], row[5])  # thread, namespace, checkpoint, task, idx
            if upsert:
                upserts[key] = row
                inserts.pop(key, None)
            elif key not in upserts:
                inserts.setdefault(key, row)
    return list(upserts.values()), list(inserts.values())


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
    - Batched runs: inside `batched()`, a run's checkpoints and writes (a dozen upserts per
      turn, each its own pooled connection and round trip: a quarter of a turn's CPU) are
      kept and written together, when the run ends and by `flush_batches()` in between (the
      turn runner calls it every second). Every checkpoint is still stored, for history and
      time travel; a worker killed mid-turn loses at most that second of them, which recovery
      handles as it handles a run killed before its first checkpoint (`turns/recovery.py`).
    """

    def __init__(self, pool: Pool, serde: JsonPlusSerializer) -> None:
        super().__init__(pool, serde=serde)
        self._pool = pool
        self._open: dict[int, _Pending] = {}

    @asynccontextmanager
    async def batched(self) -> AsyncIterator[None]:
        """Batch the checkpoint writes of the run started inside; written when it exits."""
        pending = _Pending()
        token = _BATCH.set(pending)
        self._open[id(pending)] = pending
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # closed from another context
                _BATCH.reset(token)
            self._open.pop(id(pending), None)
            await self._flush([pending])

    async def flush_batches(self, runs_per_write: int = 8) -> None:
        """Write what every open batch holds so far, `runs_per_write` runs per round trip.

        One write for a hundred running turns held the event loop for tens of milliseconds
        (adapting and sending every row happens without a pause), and every stream's next
        token waited that long (bench/load.py, token gap p95 at 500 streams). In smaller
        writes, the loop serves the streams between them."""
        batches = list(self._open.values())
        for start in range(0, len(batches), runs_per_write):
            await self._flush(batches[start : start + runs_per_write])

    async def _flush(self, batches: list[_Pending]) -> None:
        # One flush of a batch at a time: rows reach the database in the order they were made.
        # An empty batch is waited for too: a flush in flight may hold its rows, and a run's end
        # (or a read inside it) must not return before they are written.
        batches = [b for b in batches if b or b.lock.locked()]
        for batch in batches:
            await batch.lock.acquire()
        try:
            taken = [b.take() for b in batches]
            blobs = [row for t in taken for row in t.blobs]
            checkpoints = [row for t in taken for row in t.checkpoints]
            writes = [item for t in taken for item in t.writes]
            if not (blobs or checkpoints or writes):
                return  # another flush took them while this one waited
            try:
                await self._write(blobs, checkpoints, writes)
            except BaseException:
                # Kept for the next flush (upserts: writing a row twice is harmless).
                for batch, rows in zip(batches, taken, strict=True):
                    batch.put_back(rows)
                raise
        finally:
            for batch in batches:
                batch.lock.release()

    async def _write(
        self,
        blobs: list[tuple[Any, ...]],
        checkpoints: list[tuple[Any, ...]],
        writes: list[tuple[bool, list[tuple[Any, ...]]]],
    ) -> None:
        """The one write path: blobs, checkpoints, then writes, in one pipelined round trip.

        One statement per table and kind, whatever the number of rows. Upstream's
        `executemany` sends one command per row, and psycopg's pipeline waits on the socket
        through the event loop after each: a turn's dozen rows were a dozen loop round trips."""
        upserts, inserts = _final_writes(writes)
        statements = [
            # Blobs never change once written (first wins); checkpoints do (last wins).
            (_BLOBS_SQL, list({row[:4]: row for row in reversed(blobs)}.values())),
            (_CHECKPOINTS_SQL, list({row[:3]: row for row in checkpoints}.values())),
            (_WRITES_UPSERT_SQL, upserts),
            (_WRITES_INSERT_SQL, inserts),
        ]
        async with self._cursor(pipeline=True) as cur:
            for query, rows in statements:
                if rows:
                    await cur.execute(query, _columns(rows))

    async def _flush_current(self) -> None:
        """Read what this run wrote: a read inside a batched run sees its batch first."""
        pending = _BATCH.get()
        if pending:
            await self._flush([pending])

    async def aget_tuple(self, config: RunnableConfig) -> Any:
        await self._flush_current()
        return await super().aget_tuple(config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Any]:
        await self._flush_current()
        async for item in super().alist(config, filter=filter, before=before, limit=limit):
            yield item

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
        pending = _BATCH.get()
        if pending is not None:
            pending.blobs.extend(blobs)
            pending.checkpoints.append(row)
        else:
            await self._write(blobs, [row], [])
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
        # Upstream's choice of statement: special channels are replaced, others kept.
        upsert = all(w[0] in WRITES_IDX_MAP for w in writes)
        configurable = config["configurable"]
        params = self._dump_writes(
            configurable["thread_id"],
            configurable["checkpoint_ns"],
            configurable["checkpoint_id"],
            task_id,
            task_path,
            writes,
        )
        pending = _BATCH.get()
        if pending is not None:
            pending.writes.append((upsert, params))
        else:
            await self._write([], [], [(upsert, params)])

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


async def make_checkpointer(pool: Pool) -> PooledPostgresSaver:
    """Checkpoints live beside the messages, keyed by thread_id = conversation_id."""
    saver = PooledPostgresSaver(pool, serde=make_serializer())
    await saver.setup()
    return saver
