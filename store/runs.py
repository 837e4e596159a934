"""`graph_runs`: the per-node record of every turn and replay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from store.postgres import Pool

RunKind = Literal["turn", "replay"]


@dataclass
class NodeRun:
    """One node execution, as recorded while a turn streams."""

    node: str
    task_id: str
    started_at: datetime
    duration_ms: float | None = None
    status: str = "running"
    step: int | None = None
    checkpoint_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ended_at(self) -> datetime:
        """When the node finished (its start plus its duration)."""
        return self.started_at + timedelta(milliseconds=self.duration_ms or 0)


class RunRow(BaseModel):
    """A stored node run."""

    conversation_id: str
    thread_id: str
    run_id: UUID
    kind: str
    parent_checkpoint_id: str | None
    node: str
    step: int | None
    checkpoint_id: str | None
    started_at: datetime
    duration_ms: float | None
    status: str
    detail: dict[str, Any]


async def save_runs(
    pool: Pool,
    runs: Sequence[NodeRun],
    *,
    conversation_id: str,
    thread_id: str,
    run_id: UUID,
    kind: RunKind = "turn",
    parent_checkpoint_id: str | None = None,
) -> None:
    """Store a run's node records (one statement, after the turn: never on the token path)."""
    if not runs:
        return
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "insert into graph_runs (conversation_id, thread_id, run_id, kind, "
            "parent_checkpoint_id, node, task_id, step, checkpoint_id, started_at, duration_ms, "
            "status, detail) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    conversation_id,
                    thread_id,
                    run_id,
                    kind,
                    parent_checkpoint_id,
                    run.node,
                    run.task_id,
                    run.step,
                    run.checkpoint_id,
                    run.started_at,
                    run.duration_ms,
                    run.status,
                    Jsonb(run.detail),
                )
                for run in runs
            ],
        )


async def list_runs(pool: Pool, conversation_id: str, kind: RunKind | None = None) -> list[RunRow]:
    """A conversation's node runs in time order (turns, replays, or both)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select conversation_id, thread_id, run_id, kind, parent_checkpoint_id, node, step, "
            "checkpoint_id, started_at, duration_ms, status, detail from graph_runs "
            "where conversation_id = %s and (%s::text is null or kind = %s) "
            "order by started_at, id",
            (conversation_id, kind, kind),
        )
        rows = await cur.fetchall()
    return [RunRow.model_validate(row) for row in rows]
