"""One chat turn: commit the question, wait for its turn, run the graph, stream typed events,
save the answer.

The graph runs in its own task and talks to the client through a queue, so a client that
disconnects mid-answer does not cancel the turn: the answer is still finished and saved. Turns
of one conversation run one at a time, in arrival order, across workers (`store/turn_queue.py`):
a second message waits for the first answer and then sees it in its history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from langchain_core.runnables import RunnableConfig

from core.domain import Passage, RouteDecision, Usage
from graph.builder import ChatGraph
from graph.context import Context
from graph.state import AnswerMeta, RerankInfo, turn_input
from store import messages, turn_queue
from store.postgres import Pool
from turns.events import (
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
    sources_of,
)
from turns.stream import Answered, Reranked, Routed, ServingModel, Token, TracedRun

log = logging.getLogger(__name__)

INTERRUPTED = (
    "Désolée, la réponse a été interrompue. Vous pouvez réessayer dans un instant : votre "
    "message est bien enregistré."
)
NOT_SAVED = "La réponse n'a pas pu être enregistrée. Réessayez dans un instant."
TURN_LOST = (
    "Désolée, votre message n'a pas pu être traité à temps. Vous pouvez le renvoyer : il est "
    "bien enregistré."
)

Multitask = Literal["enqueue", "reject"]
# How long a waiting turn sleeps between checks at most (another worker's turn may end).
MAX_POLL_SECONDS = 0.5


class TurnLost(Exception):
    """The turn's lease expired or the message was swept: another turn may have started."""


@dataclass(frozen=True)
class TurnRequest:
    """A validated chat message, whichever payload version it came in."""

    conversation_id: str
    user_id: str
    message: str
    client_timestamp: datetime | None = None
    api_version: Literal["v1", "v2"] = "v2"
    forced_route: RouteDecision | None = None


@dataclass
class _Turn:
    """One turn's ids and what it has produced so far, to save whatever the outcome."""

    request: TurnRequest
    user_message_id: UUID
    reply_id: UUID
    seq: int = 0
    started: float = field(default_factory=time.perf_counter)
    # When the turn left the queue (equal to `started` when nobody was ahead of it).
    started_running: float | None = None
    route: RouteDecision | None = None
    passages: list[Passage] = field(default_factory=list)
    rerank: RerankInfo | None = None
    answer: AnswerMeta | None = None
    parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    serving_model: str | None = None

    def elapsed_ms(self, at: float | None = None) -> int:
        return int(((at or time.perf_counter()) - self.started) * 1000)

    @property
    def first_token_ms(self) -> int | None:
        return None if self.first_token_at is None else self.elapsed_ms(self.first_token_at)


class TurnRunner:
    """Runs turns for the server; owns the background tasks so shutdown can wait for them."""

    def __init__(
        self,
        pool: Pool,
        graph: ChatGraph,
        context: Context,
        *,
        multitask: Multitask = "enqueue",
        lease_seconds: float = 10.0,
    ):
        self._pool = pool
        self._graph = graph
        self._context = context
        self._multitask = multitask
        self._lease_seconds = lease_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"
        self._tasks: set[asyncio.Task[None]] = set()
        # Woken when a turn of the conversation ends in this process (others are polled).
        self._turn_ended: dict[str, asyncio.Event] = {}

    async def start(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Commit the user's message, then start the turn; iterate the result for its events.

        Raises `ConversationOwnedByAnotherUser`, or `ConversationBusy` with MULTITASK=reject
        (the message is then stored as rejected), before anything is streamed.
        """
        turn = _Turn(request, user_message_id=uuid4(), reply_id=uuid4())
        metadata: dict[str, Any] = {"api_version": request.api_version}
        if request.client_timestamp is not None:
            metadata["client_timestamp"] = request.client_timestamp.isoformat()
        turn.seq = await messages.save_user_message(
            self._pool,
            message_id=turn.user_message_id,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            content=request.message,
            metadata=metadata,
            worker=self.worker,
            lease_seconds=self._lease_seconds,
            reject_if_busy=self._multitask == "reject",
        )
        queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._produce(turn, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _drain(queue)

    async def wait_idle(self, grace_seconds: float = 30.0) -> None:
        """Let running turns finish and save (server shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)

    async def _produce(self, turn: _Turn, queue: asyncio.Queue[TurnEvent | None]) -> None:
        request = turn.request
        put = queue.put_nowait
        # First, always: the widget knows its message is stored, even while it waits its turn.
        put(
            MetadataEvent(
                conversation_id=request.conversation_id,
                message_id=str(turn.reply_id),
                user_message_id=str(turn.user_message_id),
            )
        )
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_lease(turn.user_message_id, lost))
        run: TracedRun | None = None
        error: ErrorEvent | None = None
        failure: BaseException | None = None
        try:
            await self._wait_for_turn(turn, lost)
            run = self._traced_run(turn)
            await self._run_until_lost(run, turn, put, lost)
        except Exception as exc:
            failure = exc
            lost_turn = isinstance(exc, TurnLost)
            if lost_turn:
                log.warning("turn lost for conversation %s: %s", request.conversation_id, exc)
            else:
                log.exception("turn failed for conversation %s", request.conversation_id)
            error = ErrorEvent(
                code="turn_lost"
                if lost_turn
                else "generation_interrupted"
                if turn.parts
                else "generation_failed",
                message=TURN_LOST if lost_turn else INTERRUPTED,
                retryable=True,
                message_id=str(turn.reply_id),
            )
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        latency_ms = turn.elapsed_ms()
        try:
            await self._save(turn, error, latency_ms)
            if run is not None:
                await run.save(
                    self._pool,
                    conversation_id=request.conversation_id,
                    thread_id=request.conversation_id,
                    run_id=turn.reply_id,
                    error=failure,
                )
        except Exception:
            log.exception("could not save the answer of conversation %s", request.conversation_id)
            if error is None:
                error = ErrorEvent(
                    code="save_failed",
                    message=NOT_SAVED,
                    retryable=True,
                    message_id=str(turn.reply_id),
                )
        finally:
            self._wake_waiters(request.conversation_id)
        put(error if error is not None else self._end_event(turn, latency_ms))
        put(None)

    async def _wait_for_turn(self, turn: _Turn, lost: asyncio.Event) -> None:
        """Wait until this message is the conversation's next turn, holding no connection."""
        delay = 0.02
        while True:
            outcome = await turn_queue.try_start(
                self._pool,
                message_id=turn.user_message_id,
                conversation_id=turn.request.conversation_id,
                seq=turn.seq,
                lease_seconds=self._lease_seconds,
            )
            if outcome == "started":
                turn.started_running = time.perf_counter()
                return
            if outcome == "gone" or lost.is_set():
                raise TurnLost("the message is no longer waiting (swept or expired)")
            ended = self._turn_ended.setdefault(turn.request.conversation_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), timeout=delay)
            delay = min(delay * 2, MAX_POLL_SECONDS)

    def _wake_waiters(self, conversation_id: str) -> None:
        ended = self._turn_ended.pop(conversation_id, None)
        if ended is not None:
            ended.set()

    async def _keep_lease(self, message_id: UUID, lost: asyncio.Event) -> None:
        """Renew the message's lease while it waits or runs; flag `lost` if it cannot."""
        period = self._lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            try:
                renewed = await turn_queue.renew(self._pool, message_id, self._lease_seconds)
            except Exception:
                log.warning("could not renew the lease of message %s", message_id, exc_info=True)
                continue
            if not renewed:
                lost.set()
                return

    def _traced_run(self, turn: _Turn) -> TracedRun:
        request = turn.request
        config: RunnableConfig = {
            "configurable": {"thread_id": request.conversation_id},
            "run_name": "chat_turn",
            "metadata": {"user_id": request.user_id, "message_id": str(turn.reply_id)},
        }
        graph_input = turn_input(
            request.message,
            message_id=str(turn.user_message_id),
            reply_id=str(turn.reply_id),
            route=request.forced_route,
        )
        return TracedRun(self._graph, graph_input, config, self._context)

    async def _run_until_lost(
        self,
        run: TracedRun,
        turn: _Turn,
        put: Callable[[TurnEvent | None], None],
        lost: asyncio.Event,
    ) -> None:
        """Run the graph; stop it if the lease is lost (another turn may have started)."""
        work = asyncio.create_task(self._consume(run, turn, put))
        watch = asyncio.create_task(lost.wait())
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            raise TurnLost("the turn's lease expired while it ran")
        work.result()

    async def _consume(
        self, run: TracedRun, turn: _Turn, put: Callable[[TurnEvent | None], None]
    ) -> None:
        """Map the graph's signals to the stream's events, keeping what must be saved."""
        async for signal in run.signals():
            match signal:
                case Token(text):
                    if turn.first_token_at is None:
                        turn.first_token_at = time.perf_counter()
                    turn.parts.append(text)
                    put(TokenEvent(text=text))
                case ServingModel(name):
                    turn.serving_model = name
                case Routed(decision):
                    turn.route = decision
                    await messages.set_message_agent(
                        self._pool, turn.user_message_id, decision.route
                    )
                    put(
                        RouteEvent(
                            agent=decision.route,
                            reason=decision.reason,
                            confidence=decision.confidence,
                            router=decision.router,
                        )
                    )
                case Reranked(passages, info):
                    turn.passages, turn.rerank = passages, info
                    put(SourcesEvent(sources=sources_of(passages), degraded=info.degraded))
                case Answered(meta):
                    turn.answer = meta

    def _end_event(self, turn: _Turn, latency_ms: int) -> EndEvent:
        meta = turn.answer
        return EndEvent(
            message_id=str(turn.reply_id),
            agent=turn.route.route if turn.route else "escalate",
            model=meta.model if meta else "",
            latency_ms=latency_ms,
            first_token_ms=turn.first_token_ms,
            usage=meta.usage if meta else Usage(),
            llm=meta.llm if meta else False,
            note=meta.note if meta else None,
            prompt_version=meta.prompt_version if meta else None,
        )

    async def _save(self, turn: _Turn, error: ErrorEvent | None, latency_ms: int) -> None:
        request = turn.request
        if error is None or turn.parts:
            meta = turn.answer
            stored: dict[str, Any] = meta.model_dump(mode="json") if meta else {}
            stored.update(
                first_token_ms=turn.first_token_ms,
                route=turn.route.model_dump() if turn.route else None,
                rerank=turn.rerank.model_dump(exclude_none=True) if turn.rerank else {},
                sources=[s.model_dump() for s in sources_of(turn.passages)],
            )
            if error is not None:
                stored["error"] = error.code
            await messages.save_assistant_message(
                self._pool,
                message_id=turn.reply_id,
                conversation_id=request.conversation_id,
                user_id=request.user_id,
                content="".join(turn.parts),
                agent=turn.route.route if turn.route else None,
                status="complete" if error is None else "interrupted",
                latency_ms=latency_ms,
                model=(meta.model if meta else None)
                or turn.serving_model
                or self._context.require_providers().generator.name,
                metadata=stored,
            )
        await messages.set_message_status(
            self._pool, turn.user_message_id, "answered" if error is None else "failed"
        )


async def _drain(queue: asyncio.Queue[TurnEvent | None]) -> AsyncIterator[TurnEvent]:
    while (event := await queue.get()) is not None:
        yield event
