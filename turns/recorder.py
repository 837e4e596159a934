"""Per-node records of a graph run, built from LangGraph's own stream events.

`tasks` events give each node's start and end, `checkpoints` events the checkpoint written
after each step, `updates` what the node decided. Nothing is added to the nodes themselves.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.types import StreamMode

from core.domain import Passage, RouteDecision
from graph.state import AnswerMeta, RerankInfo
from store.runs import NodeRun

# Everything a traced run streams: the user's tokens (custom) and what the recorder reads.
TRACE_MODES: list[StreamMode] = ["updates", "custom", "tasks", "checkpoints"]


def _scores(passages: list[Passage]) -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "source": p.source,
            "score": round(p.score, 6),
            "rerank_score": p.rerank_score,
        }
        for p in passages
    ]


def summarize(update: dict[str, Any]) -> dict[str, Any]:
    """The readable part of a node's output: decisions and ids, not whole passages.

    Read from the state fields the update writes, so it does not depend on node names.
    """
    detail: dict[str, Any] = {}
    if isinstance(route := update.get("route"), RouteDecision):
        detail.update(route.model_dump())
    if update.get("candidates"):
        detail["query"] = update.get("query", "")
        detail["candidates"] = {k: _scores(v) for k, v in update["candidates"].items()}
    if isinstance(info := update.get("rerank_info"), RerankInfo):
        detail["passages"] = _scores(update.get("passages", []))
        detail.update(info.model_dump(exclude_none=True))
    if isinstance(meta := update.get("answer_meta"), AnswerMeta):
        detail.update(
            meta.model_dump(
                mode="json",
                include={"agent", "model", "llm", "usage", "first_token_ms", "prompt_version"},
            )
        )
        if meta.fallbacks:
            detail["fallbacks"] = meta.fallbacks
        answers = [m for m in update.get("messages") or [] if isinstance(m, AIMessage)]
        if answers:
            detail["answer"] = answers[-1].text[:2000]
    return detail


class RunRecorder:
    """Collects `NodeRun`s from a graph's stream (modes in `TRACE_MODES`)."""

    def __init__(self) -> None:
        self.runs: list[NodeRun] = []
        self._open: dict[str, tuple[NodeRun, float]] = {}
        self._since_checkpoint: list[NodeRun] = []
        self._by_node: dict[str, NodeRun] = {}
        # Messages in the state at the run's last checkpoint (each turn adds at least one).
        self.messages = 0

    def observe(self, mode: str, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        if mode == "tasks":
            self._on_task(chunk)
        elif mode == "checkpoints":
            self._on_checkpoint(chunk)
        elif mode == "updates":
            for node, update in chunk.items():
                run = self._by_node.get(node)
                if run is not None and isinstance(update, dict):
                    run.detail.update(summarize(update))

    def _on_task(self, chunk: dict[str, Any]) -> None:
        task_id = str(chunk.get("id"))
        if "input" in chunk:  # start
            run = NodeRun(
                node=str(chunk.get("name")), task_id=task_id, started_at=datetime.now(UTC)
            )
            self._open[task_id] = (run, time.perf_counter())
            self.runs.append(run)
            self._by_node[run.node] = run
            return
        opened = self._open.pop(task_id, None)
        if opened is None:
            return
        run, started = opened
        run.duration_ms = round((time.perf_counter() - started) * 1000, 2)
        error = chunk.get("error")
        run.status = "error" if error is not None else "ok"
        if error is not None:
            run.detail["error"] = repr(error)[:1000]
        self._since_checkpoint.append(run)

    def _on_checkpoint(self, chunk: dict[str, Any]) -> None:
        checkpoint_id = str(chunk.get("config", {}).get("configurable", {}).get("checkpoint_id"))
        step = int(chunk.get("metadata", {}).get("step", -1))
        values = chunk.get("values")
        if isinstance(values, dict) and isinstance(values.get("messages"), list):
            self.messages = len(values["messages"])
        for run in self._since_checkpoint:
            run.checkpoint_id = checkpoint_id
            run.step = step
        self._since_checkpoint = []

    def finish(self, error: BaseException | None = None) -> list[NodeRun]:
        """Close the nodes still open (the run failed or was cancelled) and return every run."""
        for run, started in self._open.values():
            run.duration_ms = round((time.perf_counter() - started) * 1000, 2)
            run.status = "error" if error is not None else "cancelled"
            if error is not None:
                run.detail["error"] = repr(error)[:1000]
        self._open.clear()
        return self.runs
