"""One chat turn: commit the question, wait for its turn, run the graph, stream typed events,
save the answer.

The graph runs in its own task and talks to the client through a queue, so a client that
disconnects mid-answer does not cancel the turn: the answer is still finished and saved. Turns
of one conversation run one at a time, in arrival order, across workers (`store/turn_queue.py`):
a second message waits for the first answer and then sees it in its history. What a turn has
streamed is kept in memory for clients that resume here (`turns/live.py`) and flushed as a draft
for any other worker and for crash recovery (`store/drafts.py`).
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

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig

from core.domain import ROUTES, Passage, RouteDecision, Usage
from graph.builder import ChatGraph
from graph.checkpointer import PooledPostgresSaver
from graph.context import Context
from graph.state import AnswerMeta, RerankInfo, turn_input
from store import checkpoints, drafts, messages, turn_queue
from store.postgres import Pool
from turns.events import (
    METADATA_ID,
    ROUTE_ID,
    SOURCES_ID,
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
    final_id,
    sources_of,
    token_id,
)
from turns.handoff import HandoffDesk
from turns.live import LiveTurn
from turns.metrics import TurnMetrics
from turns.stream import Answered, Reranked, Routed, ServingModel, Signal, Token, TracedRun

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
# Drafts written per round trip by the flusher (one write for every running turn held the event
# loop long enough to delay every stream's next token).
DRAFTS_PER_WRITE = 16


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
    # False when the message was stored already `running` (nobody ahead of it).
    waiting: bool = True
    # Whether a person may have the conversation when the turn starts: it had one at arrival,
    # or the message queued behind a turn that may open a hand-off (saves a query per turn).
    maybe_with_team: bool = True
    started: float = field(default_factory=time.perf_counter)
    route: RouteDecision | None = None
    passages: list[Passage] = field(default_factory=list)
    rerank: RerankInfo | None = None
    answer: AnswerMeta | None = None
    parts: list[str] = field(default_factory=list)
    length: int = 0
    first_token_at: float | None = None
    serving_model: str | None = None
    live: LiveTurn = field(default_factory=LiveTurn)
    # Kept for the team (a person has the conversation): acknowledged, not routed or generated.
    held: bool = False
    # Set when the draft in the database is behind what was streamed.
    unsaved: asyncio.Event = field(default_factory=asyncio.Event)

    def elapsed_ms(self, at: float | None = None) -> int:
        return int(((at or time.perf_counter()) - self.started) * 1000)

    @property
    def first_token_ms(self) -> int | None:
        return None if self.first_token_at is None else self.elapsed_ms(self.first_token_at)

    def draft(self) -> drafts.Draft:
        return drafts.Draft(
            message_id=self.reply_id,
            user_message_id=self.user_message_id,
            conversation_id=self.request.conversation_id,
            agent=self.route.route if self.route else None,
            route=self.route.model_dump() if self.route else None,
            sources=[s.model_dump() for s in sources_of(self.passages)] if self.rerank else None,
            degraded=bool(self.rerank and self.rerank.degraded),
            content="".join(self.parts),
            model=self.serving_model,
        )


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
        max_running: int = 96,
        draft_seconds: float = 1.0,
        keep_turns: int = 20,
        handoffs: HandoffDesk | None = None,
    ):
        self._pool = pool
        self._graph = graph
        self._context = context
        self._multitask = multitask
        self._lease_seconds = lease_seconds
        self._draft_seconds = draft_seconds
        # The messages whose turns this process runs or queues, with their `lost` flags.
        self._held: dict[UUID, tuple[_Turn, asyncio.Event]] = {}
        # First come, first served (asyncio.Semaphore wakes waiters in order).
        self._running = asyncio.Semaphore(max_running)
        self._keepers: list[asyncio.Task[None]] = []
        self._keep_turns = keep_turns
        self._handoffs = handoffs
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"
        self._tasks: set[asyncio.Task[None]] = set()
        # Woken when a turn of the conversation ends in this process (others are polled).
        self._turn_ended: dict[str, asyncio.Event] = {}
        self._live: dict[UUID, LiveTurn] = {}

    def live(self, reply_id: UUID) -> LiveTurn | None:
        """The turn answering as `reply_id`, if it runs in this process."""
        return self._live.get(reply_id)

    async def start(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Commit the user's message, then start the turn; iterate the result for its events.

        Raises `ConversationOwnedByAnotherUser`, or `ConversationBusy` with MULTITASK=reject
        (the message is then stored as rejected), before anything is streamed.
        """
        turn = _Turn(request, user_message_id=uuid4(), reply_id=uuid4())
        metadata: dict[str, Any] = {"api_version": request.api_version}
        if request.client_timestamp is not None:
            metadata["client_timestamp"] = request.client_timestamp.isoformat()
        admitted = await messages.save_user_message(
            self._pool,
            message_id=turn.user_message_id,
            reply_id=turn.reply_id,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            content=request.message,
            metadata=metadata,
            worker=self.worker,
            lease_seconds=self._lease_seconds,
            reject_if_busy=self._multitask == "reject",
        )
        turn.seq, turn.waiting = admitted.seq, not admitted.started
        turn.maybe_with_team = admitted.with_team or not admitted.started
        queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        self._live[turn.reply_id] = turn.live
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
        metrics = TurnMetrics()

        def emit(event: TurnEvent) -> None:
            turn.live.record(event)
            metrics.see(event)
            queue.put_nowait(event)

        # First, always: the widget knows its message is stored, even while it waits its turn.
        emit(
            MetadataEvent(
                id=METADATA_ID,
                conversation_id=request.conversation_id,
                message_id=str(turn.reply_id),
                user_message_id=str(turn.user_message_id),
            )
        )
        lost = asyncio.Event()
        self._start_keepers()
        self._held[turn.user_message_id] = (turn, lost)
        run: TracedRun | None = None
        error: ErrorEvent | None = None
        failure: BaseException | None = None
        try:
            await self._wait_for_turn(turn, lost)
            if not await self._hold_for_team(turn, emit):
                async with self._running:
                    if lost.is_set():
                        raise TurnLost("the turn's lease expired while it waited to run")
                    run = self._traced_run(turn, emit)
                    await self._run_until_lost(run, turn, emit, lost)
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
            self._held.pop(turn.user_message_id, None)
        latency_ms = turn.elapsed_ms()
        try:
            await self._open_handoff(turn)
            if not turn.held:  # a held message was finished with its acknowledgement
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
        final = error if error is not None else self._end_event(turn, latency_ms)
        final.id = final_id(turn.length)
        emit(final)
        queue.put_nowait(None)
        self._live.pop(turn.reply_id, None)
        # A conversation has at most as many turns as its state has messages: until it has more
        # than `keep_turns` of them there is nothing to prune (most conversations, most turns).
        if run is None or run.recorder.messages <= self._keep_turns:
            return
        try:
            await checkpoints.prune(self._pool, request.conversation_id, self._keep_turns)
        except Exception:
            log.warning("could not prune the checkpoints of %s", request.conversation_id)

    async def _hold_for_team(self, turn: _Turn, emit: Callable[[TurnEvent], None]) -> bool:
        """While a person has the conversation, acknowledge the message and keep it for them
        (`turns/handoff.py`); False when the bot has it."""
        if self._handoffs is None or not turn.maybe_with_team:
            return False
        held = await self._handoffs.hold(
            conversation_id=turn.request.conversation_id,
            user_message_id=turn.user_message_id,
            reply_id=turn.reply_id,
        )
        if held is None:
            return False
        turn.held, turn.route, turn.answer = True, held.decision, held.meta
        turn.first_token_at = time.perf_counter()
        turn.parts.append(held.text)
        turn.length += len(held.text)
        decision = held.decision
        emit(
            RouteEvent(
                id=ROUTE_ID,
                agent=decision.route,
                reason=decision.reason,
                confidence=decision.confidence,
                router=decision.router,
            )
        )
        emit(TokenEvent(id=token_id(turn.length), text=held.text))
        return True

    async def _open_handoff(self, turn: _Turn) -> None:
        """An escalated turn gives the conversation to the team, before the turn ends so the
        conversation's next message finds it waiting (`turns/handoff.py`; never raises)."""
        if self._handoffs is None or turn.held or turn.route is None:
            return
        if turn.route.route == "escalate":
            await self._handoffs.open(
                conversation_id=turn.request.conversation_id,
                user_id=turn.request.user_id,
                decision=turn.route,
                user_message_id=turn.user_message_id,
                reply_id=turn.reply_id,
                answer="".join(turn.parts),
            )

    async def _wait_for_turn(self, turn: _Turn, lost: asyncio.Event) -> None:
        """Wait until this message is the conversation's next turn, holding no connection."""
        if not turn.waiting:
            return
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

    def _start_keepers(self) -> None:
        """Start this process's lease keeper and draft flusher (once, on the running loop)."""
        if not self._keepers:
            self._keepers = [
                asyncio.create_task(self._keep_leases()),
                asyncio.create_task(self._flush_drafts()),
            ]

    async def close(self) -> None:
        """Stop the keepers (after `wait_idle`, at shutdown)."""
        for task in self._keepers:
            task.cancel()
        if self._keepers:
            await asyncio.wait(self._keepers, timeout=1.0)
        self._keepers = []

    async def _keep_leases(self) -> None:
        """Renew the lease of every message this process holds, in one statement per period
        (not one per turn: at hundreds of turns, per-turn renewals queued behind the pool and
        expired); a message whose lease could not be renewed has its turn flagged lost."""
        period = self._lease_seconds / 3
        while True:
            await asyncio.sleep(period)
            held = dict(self._held)
            if not held:
                continue
            try:
                renewed = await turn_queue.renew_many(self._pool, list(held), self._lease_seconds)
            except Exception:
                log.warning("could not renew the leases of %d message(s)", len(held), exc_info=True)
                continue
            for message_id, (_, lost) in held.items():
                if message_id not in renewed and message_id in self._held:
                    lost.set()

    async def _flush_drafts(self) -> None:
        """Every `draft_seconds`, write the drafts that are behind, a few per pipeline (off
        the token path), and the checkpoints running turns have batched so far. A turn's first
        draft waits a period too: most turns end before it, and a draft only matters for a
        turn still running (a resume elsewhere) or a crash."""
        saver = self._graph.checkpointer
        while True:
            await asyncio.sleep(self._draft_seconds)
            if isinstance(saver, PooledPostgresSaver):
                try:
                    await saver.flush_batches()
                except Exception:
                    log.warning("could not write batched checkpoints", exc_info=True)
            now = time.perf_counter()
            behind = [
                turn
                for turn, _ in list(self._held.values())
                if turn.unsaved.is_set() and now - turn.started >= self._draft_seconds
            ]
            if not behind:
                continue
            # A few drafts per round trip: the loop serves the streams between two writes.
            for start in range(0, len(behind), DRAFTS_PER_WRITE):
                chunk = behind[start : start + DRAFTS_PER_WRITE]
                for turn in chunk:
                    turn.unsaved.clear()
                try:
                    await drafts.save_many(self._pool, [turn.draft() for turn in chunk])
                except Exception:
                    log.warning("could not save %d draft(s)", len(chunk), exc_info=True)
                    for turn in chunk:
                        turn.unsaved.set()

    def _traced_run(self, turn: _Turn, emit: Callable[[TurnEvent], None]) -> TracedRun:
        request = turn.request
        graph_input = turn_input(
            request.message,
            message_id=str(turn.user_message_id),
            reply_id=str(turn.reply_id),
            route=request.forced_route,
        )
        return TracedRun(
            self._graph,
            graph_input,
            self._config(turn),
            self._context,
            on_chunk=lambda signal: self._take(turn, emit, signal),
        )

    def _config(self, turn: _Turn) -> RunnableConfig:
        return {
            "configurable": {"thread_id": turn.request.conversation_id},
            "run_name": "chat_turn",
            "metadata": {"user_id": turn.request.user_id, "message_id": str(turn.reply_id)},
        }

    async def _run_until_lost(
        self,
        run: TracedRun,
        turn: _Turn,
        emit: Callable[[TurnEvent], None],
        lost: asyncio.Event,
    ) -> None:
        """Run the graph; stop it if the lease is lost (another turn may have started)."""
        work = asyncio.create_task(self._consume(run, turn, emit))
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
        self, run: TracedRun, turn: _Turn, emit: Callable[[TurnEvent], None]
    ) -> None:
        """Read the graph's signals until the run ends (its tokens come to `_take` directly)."""
        async for signal in run.signals():
            self._take(turn, emit, signal)

    def _take(self, turn: _Turn, emit: Callable[[TurnEvent], None], signal: Signal) -> None:
        """Map a signal to the stream's events, keeping what must be saved."""
        match signal:
            case Token(text):
                if turn.first_token_at is None:
                    turn.first_token_at = time.perf_counter()
                turn.parts.append(text)
                turn.length += len(text)
                turn.unsaved.set()
                emit(TokenEvent(id=token_id(turn.length), text=text))
            case ServingModel(name):
                turn.serving_model = name
            case Routed(decision):
                turn.route = decision
                turn.unsaved.set()
                emit(
                    RouteEvent(
                        id=ROUTE_ID,
                        agent=decision.route,
                        reason=decision.reason,
                        confidence=decision.confidence,
                        router=decision.router,
                    )
                )
            case Reranked(passages, info):
                turn.passages, turn.rerank = passages, info
                turn.unsaved.set()
                emit(
                    SourcesEvent(
                        id=SOURCES_ID, sources=sources_of(passages), degraded=info.degraded
                    )
                )
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
        answer: messages.Answer | None = None
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
            answer = messages.Answer(
                message_id=turn.reply_id,
                content="".join(turn.parts),
                agent=turn.route.route if turn.route else None,
                status="complete" if error is None else "interrupted",
                latency_ms=latency_ms,
                model=(meta.model if meta else None)
                or turn.serving_model
                or self._context.require_providers().generator.name,
                metadata=stored,
            )
        if error is not None and turn.parts:
            await self._keep_partial_answer(turn)
        await messages.finish_turn(
            self._pool,
            user_message_id=turn.user_message_id,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            status="answered" if error is None else "failed",
            answer=answer,
        )

    async def _keep_partial_answer(self, turn: _Turn) -> None:
        """Put an interrupted answer in the checkpointed history too, as the messages table
        has it, so the next turn and the table agree on what was said."""
        if turn.route is None:
            return
        await append_interrupted_answer(
            self._graph,
            conversation_id=turn.request.conversation_id,
            user_message_id=str(turn.user_message_id),
            reply_id=str(turn.reply_id),
            agent=turn.route.route,
            content="".join(turn.parts),
            question=turn.request.message,
        )


async def append_interrupted_answer(
    graph: ChatGraph,
    *,
    conversation_id: str,
    user_message_id: str,
    reply_id: str,
    agent: str,
    content: str,
    question: str | None = None,
) -> bool:
    """Append what was streamed of an answer to the conversation's checkpoint, as written by
    that persona's node, if the question it answers is the checkpoint's last message.

    A worker killed right after the run's input was checkpointed leaves the question only as
    a pending write: it is not in the history yet. Given the `question`, both are appended
    (with the question's own id, so if the pending write is ever applied, it replaces the
    question in place instead of adding it twice)."""
    if agent not in ROUTES:
        return False
    config: RunnableConfig = {"configurable": {"thread_id": conversation_id}}
    state = await graph.aget_state(config)
    history = state.values.get("messages", []) if state.values else []
    answer = AIMessage(
        content=content, name=agent, id=reply_id, response_metadata={"interrupted": True}
    )
    if history and isinstance(history[-1], HumanMessage) and history[-1].id == user_message_id:
        await graph.aupdate_state(config, {"messages": [answer]}, as_node=agent)
        return True
    if question is not None and all(message.id != user_message_id for message in history):
        pending = HumanMessage(content=question, id=user_message_id)
        await graph.aupdate_state(config, {"messages": [pending, answer]}, as_node=agent)
        return True
    return False


async def _drain(queue: asyncio.Queue[TurnEvent | None]) -> AsyncIterator[TurnEvent]:
    """The turn's events; tokens already waiting are merged into one event (its id is the
    last one's), so a client that falls behind gets fewer, larger events."""
    while (event := await queue.get()) is not None:
        if isinstance(event, TokenEvent) and not queue.empty():
            texts = [event.text]
            last = event
            while not queue.empty():
                following = queue.get_nowait()
                if not isinstance(following, TokenEvent):
                    yield TokenEvent(id=last.id, text="".join(texts))
                    if following is None:
                        return
                    event = following
                    break
                texts.append(following.text)
                last = following
            else:
                event = TokenEvent(id=last.id, text="".join(texts))
        yield event
