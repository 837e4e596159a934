"""Batched checkpoints: a run's steps are written together, none is lost, reads see them."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.base import WRITES_IDX_MAP, empty_checkpoint
from langgraph.graph import END, START, StateGraph

from graph.checkpointer import PooledPostgresSaver, make_serializer
from services import Services
from store.postgres import Pool

# A special channel: upstream replaces its write rather than keeping the first.
ERROR = "__error__"
assert ERROR in WRITES_IDX_MAP


class _Counter(TypedDict):
    seen: Annotated[list[int], operator.add]


async def _stored(pool: Pool, thread_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select count(*) as n from checkpoints where thread_id = %s", (thread_id,)
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def test_a_batched_run_stores_every_step_once_it_ends_and_on_flush(
    services: Services,
) -> None:
    saver = PooledPostgresSaver(services.pool, make_serializer())
    thread = "batched-run-1"
    during: dict[str, int] = {}

    async def first(state: _Counter) -> dict[str, Any]:
        during["first"] = await _stored(services.pool, thread)
        return {"seen": [1]}

    async def second(state: _Counter) -> dict[str, Any]:
        during["before_flush"] = await _stored(services.pool, thread)
        await saver.flush_batches()  # what the turn runner does every second
        during["after_flush"] = await _stored(services.pool, thread)
        # A read inside the run sees the run's own writes.
        snapshot = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        during["read_steps"] = int(snapshot.metadata["step"]) if snapshot else -99
        return {"seen": [2]}

    builder = StateGraph(_Counter)
    builder.add_node("first", first)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": thread}}

    async with saver.batched():
        result = await graph.ainvoke({"seen": [0]}, config)

    assert result["seen"] == [0, 1, 2]
    # Nothing was written while the first steps ran; a flush wrote them all at once.
    assert during["first"] == 0
    assert during["before_flush"] == 0
    assert during["after_flush"] == 3  # steps -1 (input), 0 (before `first`), 1 (after it)
    assert during["read_steps"] == 1
    # Once the run ended: every step, each once.
    assert await _stored(services.pool, thread) == 4
    history = [c async for c in saver.alist(config)]
    assert [c.metadata["step"] for c in history] == [2, 1, 0, -1]
    state = await graph.aget_state(config)
    assert state.values["seen"] == [0, 1, 2]


async def test_a_run_outside_a_batch_writes_through(services: Services) -> None:
    saver = PooledPostgresSaver(services.pool, make_serializer())
    thread = "batched-run-2"
    seen_during: list[int] = []

    async def only(state: _Counter) -> dict[str, Any]:
        seen_during.append(await _stored(services.pool, thread))
        return {"seen": [1]}

    builder = StateGraph(_Counter)
    builder.add_node("only", only)
    builder.add_edge(START, "only")
    builder.add_edge("only", END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": thread}}
    await graph.ainvoke({"seen": [0]}, config, durability="sync")
    # The input checkpoints were stored before the node ran.
    assert seen_during == [2]


async def test_a_run_ends_only_once_a_flush_in_flight_has_written_its_steps(
    services: Services,
) -> None:
    """The turn runner's periodic flush may have taken a run's rows and still be writing them
    when the run ends: the run's end waits for that write, so the next turn of the
    conversation (or a replay's `aget_state`) reads every step."""
    saver = PooledPostgresSaver(services.pool, make_serializer())
    thread = "batched-run-3"
    write = saver._write
    started = asyncio.Event()

    async def slow_write(*args: Any) -> None:
        started.set()
        await asyncio.sleep(0.3)
        await write(*args)

    saver._write = slow_write  # type: ignore[method-assign, assignment]
    builder = StateGraph(_Counter)
    builder.add_node("only", lambda state: {"seen": [1]})
    builder.add_edge(START, "only")
    builder.add_edge("only", END)
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": thread}}

    async with saver.batched():
        await graph.ainvoke({"seen": [0]}, config)
        flusher = asyncio.create_task(saver.flush_batches())
        await started.wait()  # the flush holds the run's rows, not yet written
    assert await _stored(services.pool, thread) == 3
    await flusher


async def _same_key_twice(saver: PooledPostgresSaver, thread: str) -> None:
    """Every row kind put twice under one key, with different values."""
    base: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    for step, seen in ((1, [1]), (2, [2])):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = "checkpoint-1"
        checkpoint["channel_values"] = {"seen": seen}
        checkpoint["channel_versions"] = {"seen": "1"}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        config = await saver.aput(base, checkpoint, metadata, {"seen": "1"})
    for value in ("first", "second"):
        # A special channel (errors) is replaced, an ordinary one kept.
        await saver.aput_writes(config, [(ERROR, value)], task_id="task-error")
        await saver.aput_writes(config, [("seen", value)], task_id="task-seen")


async def test_a_batch_ends_as_its_rows_written_one_by_one_would(services: Services) -> None:
    """A batch writes one statement per table, which cannot hold a key twice: rows put twice
    under one key end as the upstream row-by-row upserts leave them (checkpoints and special
    writes: the last; blobs and ordinary writes: the first)."""
    saver = PooledPostgresSaver(services.pool, make_serializer())
    await _same_key_twice(saver, "one-by-one")
    async with saver.batched():
        await _same_key_twice(saver, "batched-same-keys")

    async def stored(thread: str) -> tuple[Any, ...]:
        snapshot = await saver.aget_tuple({"configurable": {"thread_id": thread}})
        assert snapshot is not None
        writes = sorted((task, channel, value) for task, channel, value in snapshot.pending_writes)
        return snapshot.metadata["step"], snapshot.checkpoint["channel_values"], writes

    expected = await stored("one-by-one")
    assert expected == (
        2,
        {"seen": [1]},
        [("task-error", ERROR, "second"), ("task-seen", "seen", "first")],
    )
    assert await stored("batched-same-keys") == expected
