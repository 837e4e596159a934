"""Run the graph once with tracing on, and read its stream as typed signals.

The one streaming loop of the project: the server's turns and the developer tools' replays
both go through `TracedRun`, so what a turn records is what a replay records.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.runnables import RunnableConfig

from core.domain import Passage, RouteDecision
from graph.builder import ChatGraph
from graph.checkpointer import PooledPostgresSaver
from graph.context import Context
from graph.state import AnswerMeta, RerankInfo, StreamChunk
from store.postgres import Pool
from store.runs import RunKind, save_runs
from turns.recorder import TRACE_MODES, RunRecorder


@dataclass(frozen=True)
class Token:
    """A piece of the answer, for the user."""

    text: str


@dataclass(frozen=True)
class ServingModel:
    """The model that started answering (known before the answer ends)."""

    name: str


@dataclass(frozen=True)
class Routed:
    decision: RouteDecision


@dataclass(frozen=True)
class Reranked:
    passages: list[Passage]
    info: RerankInfo


@dataclass(frozen=True)
class Answered:
    meta: AnswerMeta


Signal = Token | ServingModel | Routed | Reranked | Answered


def chunk_signals(chunk: StreamChunk) -> list[Signal]:
    """What a chunk the generator wrote means for the turn."""
    found: list[Signal] = []
    if name := chunk.get("serving_model"):
        found.append(ServingModel(str(name)))
    if text := chunk.get("token"):
        found.append(Token(str(text)))
    return found


def signals_of(update: dict[str, Any]) -> list[Signal]:
    """What a node's state update means for the turn, read from the fields it writes."""
    found: list[Signal] = []
    if isinstance(route := update.get("route"), RouteDecision):
        found.append(Routed(route))
    if isinstance(info := update.get("rerank_info"), RerankInfo):
        found.append(Reranked(list(update.get("passages", [])), info))
    if isinstance(meta := update.get("answer_meta"), AnswerMeta):
        found.append(Answered(meta))
    return found


class TracedRun:
    """One graph run streamed with the modes the recorder needs.

    Iterate `signals()`; then `save()` stores the node records, whatever the outcome.

    With `on_chunk`, the generator's tokens and serving model go to it from the generator's own
    step (the context's `token_sink`), not through `signals()`: three event-loop hops fewer per
    token (LangGraph's stream queue, its waiter task, this reader). Under load each hop waits
    behind all the work ready at that moment, so fewer hops mean steadier gaps between tokens,
    and less CPU per token. The order is kept: `astream` hands a step's updates (the route,
    the sources) to its reader before it starts the next step's tasks.
    """

    def __init__(
        self,
        graph: ChatGraph,
        graph_input: dict[str, Any] | None,
        config: RunnableConfig,
        context: Context | None = None,
        on_chunk: Callable[[Signal], None] | None = None,
    ):
        self._graph = graph
        # A partial update of ChatState (LangGraph takes a dict where its types say the state).
        self._input: Any = graph_input
        self._config = config
        if on_chunk is not None:

            def hand_over(chunk: StreamChunk) -> None:
                for signal in chunk_signals(chunk):
                    on_chunk(signal)

            context = dataclasses.replace(context or Context(), token_sink=hand_over)
        self._context = context
        self.recorder = RunRecorder()
        # begin_turn also writes `route` when a caller forces it: report it once.
        self._routed = False

    async def signals(self) -> AsyncIterator[Signal]:
        """The run's typed signals in order; a node's failure propagates as its exception.

        The run's checkpoints are written in batches (`PooledPostgresSaver.batched`), all of
        them stored by the time the last signal is read."""
        saver = self._graph.checkpointer
        batched = (
            saver.batched() if isinstance(saver, PooledPostgresSaver) else contextlib.nullcontext()
        )
        async with batched:
            async for signal in self._signals():
                yield signal

    async def _signals(self) -> AsyncIterator[Signal]:
        async for mode, chunk in self._graph.astream(
            self._input, self._config, context=self._context, stream_mode=TRACE_MODES
        ):
            self.recorder.observe(mode, chunk)
            if mode == "custom" and isinstance(chunk, dict):
                for signal in chunk_signals(chunk):  # type: ignore[arg-type]
                    yield signal
            elif mode == "updates" and isinstance(chunk, dict):
                for update in chunk.values():
                    if not isinstance(update, dict):
                        continue
                    for signal in signals_of(update):
                        if isinstance(signal, Routed):
                            if self._routed:
                                continue
                            self._routed = True
                        yield signal

    async def save(
        self,
        pool: Pool,
        *,
        conversation_id: str,
        thread_id: str,
        run_id: UUID,
        kind: RunKind = "turn",
        parent_checkpoint_id: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Store the node records of this run (after it ended or failed)."""
        await save_runs(
            pool,
            self.recorder.finish(error),
            conversation_id=conversation_id,
            thread_id=thread_id,
            run_id=run_id,
            kind=kind,
            parent_checkpoint_id=parent_checkpoint_id,
        )
