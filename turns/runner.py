"""One chat turn: commit the question, run the graph, stream typed events, save the answer.

The graph runs in its own task and talks to the client through a queue, so a client that
disconnects mid-answer does not cancel the turn: the answer is still finished and saved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from langchain_core.runnables import RunnableConfig

from core.domain import Passage, RouteDecision, Usage
from graph.builder import ChatGraph
from graph.context import Context
from graph.state import AnswerMeta, RerankInfo, turn_input
from store import messages
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
    started: float = field(default_factory=time.perf_counter)
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

    def __init__(self, pool: Pool, graph: ChatGraph, context: Context):
        self._pool = pool
        self._graph = graph
        self._context = context
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Commit the user's message, then start the turn; iterate the result for its events.

        Raises `ConversationOwnedByAnotherUser` before anything is streamed.
        """
        turn = _Turn(request, user_message_id=uuid4(), reply_id=uuid4())
        metadata: dict[str, Any] = {"api_version": request.api_version}
        if request.client_timestamp is not None:
            metadata["client_timestamp"] = request.client_timestamp.isoformat()
        await messages.save_user_message(
            self._pool,
            message_id=turn.user_message_id,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            content=request.message,
            metadata=metadata,
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
        put(
            MetadataEvent(
                conversation_id=request.conversation_id,
                message_id=str(turn.reply_id),
                user_message_id=str(turn.user_message_id),
            )
        )
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
        run = TracedRun(self._graph, graph_input, config, self._context)
        error: ErrorEvent | None = None
        failure: BaseException | None = None
        try:
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
        except Exception as exc:
            failure = exc
            log.exception("turn failed for conversation %s", request.conversation_id)
            error = ErrorEvent(
                code="generation_interrupted" if turn.parts else "generation_failed",
                message=INTERRUPTED,
                retryable=True,
                message_id=str(turn.reply_id),
            )
        latency_ms = turn.elapsed_ms()
        try:
            await self._save(turn, error, latency_ms)
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
        if error is not None:
            put(error)
        else:
            put(self._end_event(turn, latency_ms))
        put(None)

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
