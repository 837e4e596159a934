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
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

from graph.context import Context
from graph.providers import Providers
from graph.state import ChatState, Passage, Route, RouteDecision
from graph.store import messages as store
from graph.store.postgres import Pool
from graph.store.runs import save_runs
from graph.tracing import TRACE_MODES, RunRecorder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRequest:
    """A validated chat message, whichever payload version it came in."""

    conversation_id: str
    user_id: str
    message: str
    client_timestamp: datetime | None = None
    api_version: Literal["v1", "v2"] = "v2"
    forced_route: RouteDecision | None = None


class TurnEvent(BaseModel):
    """Base of the events a turn emits (the SSE `event:` name is `kind`)."""

    kind: str

    def data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"kind"})


class MetadataEvent(TurnEvent):
    kind: str = "metadata"
    conversation_id: str
    message_id: str
    user_message_id: str


class RouteEvent(TurnEvent):
    kind: str = "route"
    agent: Route
    reason: str
    confidence: float
    router: str


class SourcesEvent(TurnEvent):
    kind: str = "sources"
    sources: list[dict[str, Any]]
    degraded: bool = False


class TokenEvent(TurnEvent):
    kind: str = "token"
    text: str


class EndEvent(TurnEvent):
    kind: str = "end"
    message_id: str
    agent: Route
    model: str
    latency_ms: int
    first_token_ms: int | None
    usage: dict[str, Any]
    llm: bool
    note: str | None = None
    prompt_version: str | None = None


class ErrorEvent(TurnEvent):
    kind: str = "error"
    code: str
    message: str
    retryable: bool
    message_id: str


def source_view(passage: Passage, number: int) -> dict[str, Any]:
    """How a cited passage is shown to the widget."""
    return {
        "number": number,
        "id": passage.id,
        "title": passage.title,
        "section": passage.section,
        "source": passage.source,
        "agent_owner": passage.agent_owner,
        "score": passage.rerank_score if passage.rerank_score is not None else passage.score,
        "excerpt": passage.content[:280],
    }


def turn_input(
    message: str, user_message_id: UUID, reply_id: UUID, forced: RouteDecision | None
) -> dict[str, Any]:
    """The graph input of a new turn: the new message, and every per-turn field reset."""
    return {
        "messages": [HumanMessage(content=message, id=str(user_message_id))],
        "route": forced,
        "query": "",
        "candidates": {},
        "passages": [],
        "rerank_info": {},
        "answer_meta": {},
        "reply_id": str(reply_id),
    }


@dataclass
class _Progress:
    """What the producer has seen so far, to save whatever the outcome."""

    route: RouteDecision | None = None
    passages: list[Passage] = field(default_factory=list)
    rerank_info: dict[str, Any] = field(default_factory=dict)
    answer_meta: dict[str, Any] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    serving_model: str | None = None


class TurnRunner:
    """Runs turns for the server; owns the background tasks so shutdown can wait for them."""

    def __init__(
        self,
        pool: Pool,
        graph: CompiledStateGraph[ChatState, Context, Any, Any],
        providers: Providers,
        context: Context,
    ):
        self._pool = pool
        self._graph = graph
        self._providers = providers
        self._context = context
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        """Commit the user's message, then start the turn; iterate the result for its events.

        Raises `ConversationOwnedByAnotherUser` before anything is streamed.
        """
        user_message_id, reply_id = uuid4(), uuid4()
        metadata: dict[str, Any] = {"api_version": request.api_version}
        if request.client_timestamp is not None:
            metadata["client_timestamp"] = request.client_timestamp.isoformat()
        await store.save_user_message(
            self._pool,
            message_id=user_message_id,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            content=request.message,
            metadata=metadata,
        )
        queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._produce(request, user_message_id, reply_id, queue))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _drain(queue)

    async def wait_idle(self, grace_seconds: float = 30.0) -> None:
        """Let running turns finish and save (server shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)

    async def _produce(
        self,
        request: TurnRequest,
        user_message_id: UUID,
        reply_id: UUID,
        queue: asyncio.Queue[TurnEvent | None],
    ) -> None:
        started = time.perf_counter()
        progress = _Progress()
        put = queue.put_nowait
        put(
            MetadataEvent(
                conversation_id=request.conversation_id,
                message_id=str(reply_id),
                user_message_id=str(user_message_id),
            )
        )
        config: RunnableConfig = {
            "configurable": {"thread_id": request.conversation_id},
            "run_name": "chat_turn",
            "metadata": {"user_id": request.user_id, "message_id": str(reply_id)},
        }
        error: ErrorEvent | None = None
        recorder = RunRecorder()
        failure: BaseException | None = None
        try:
            async for mode, chunk in self._graph.astream(
                turn_input(request.message, user_message_id, reply_id, request.forced_route),
                config,
                context=self._context,
                stream_mode=TRACE_MODES,
            ):
                recorder.observe(mode, chunk)
                if mode == "custom" and isinstance(chunk, dict):
                    if "serving_model" in chunk:
                        progress.serving_model = str(chunk["serving_model"])
                    token = chunk.get("token")
                    if token:
                        if progress.first_token_at is None:
                            progress.first_token_at = time.perf_counter()
                        progress.parts.append(token)
                        put(TokenEvent(text=token))
                elif mode == "updates" and isinstance(chunk, dict):
                    await self._on_update(chunk, progress, user_message_id, put)
        except Exception as exc:
            failure = exc
            log.exception("turn failed for conversation %s", request.conversation_id)
            error = ErrorEvent(
                code="generation_interrupted" if progress.parts else "generation_failed",
                message="Désolée, la réponse a été interrompue. Vous pouvez réessayer dans un "
                "instant : votre message est bien enregistré.",
                retryable=True,
                message_id=str(reply_id),
            )
            log.debug("error detail: %r", exc)
        latency_ms = int((time.perf_counter() - started) * 1000)
        first_token_ms = (
            None
            if progress.first_token_at is None
            else int((progress.first_token_at - started) * 1000)
        )
        try:
            await self._save(
                request, user_message_id, reply_id, progress, error, latency_ms, first_token_ms
            )
            await save_runs(
                self._pool,
                recorder.finish(failure),
                conversation_id=request.conversation_id,
                thread_id=request.conversation_id,
                run_id=reply_id,
            )
        except Exception:
            log.exception("could not save the answer of conversation %s", request.conversation_id)
            if error is None:
                error = ErrorEvent(
                    code="save_failed",
                    message="La réponse n'a pas pu être enregistrée. Réessayez dans un instant.",
                    retryable=True,
                    message_id=str(reply_id),
                )
        if error is not None:
            put(error)
        else:
            meta = progress.answer_meta
            put(
                EndEvent(
                    message_id=str(reply_id),
                    agent=progress.route.route if progress.route else "escalate",
                    model=str(meta.get("model", "")),
                    latency_ms=latency_ms,
                    first_token_ms=first_token_ms,
                    usage=dict(meta.get("usage", {})),
                    llm=bool(meta.get("llm", False)),
                    note=meta.get("note"),
                    prompt_version=meta.get("prompt_version"),
                )
            )
        put(None)

    async def _on_update(
        self,
        chunk: dict[str, Any],
        progress: _Progress,
        user_message_id: UUID,
        put: Any,
    ) -> None:
        for node, update in chunk.items():
            if not isinstance(update, dict):
                continue
            if node == "route" and update.get("route") is not None:
                decision: RouteDecision = update["route"]
                progress.route = decision
                await store.set_message_agent(self._pool, user_message_id, decision.route)
                put(
                    RouteEvent(
                        agent=decision.route,
                        reason=decision.reason,
                        confidence=decision.confidence,
                        router=decision.router,
                    )
                )
            elif node == "rerank":
                progress.passages = list(update.get("passages", []))
                progress.rerank_info = dict(update.get("rerank_info", {}))
                put(
                    SourcesEvent(
                        sources=[source_view(p, i + 1) for i, p in enumerate(progress.passages)],
                        degraded=bool(progress.rerank_info.get("degraded", False)),
                    )
                )
            elif "answer_meta" in update:
                progress.answer_meta = dict(update["answer_meta"])

    async def _save(
        self,
        request: TurnRequest,
        user_message_id: UUID,
        reply_id: UUID,
        progress: _Progress,
        error: ErrorEvent | None,
        latency_ms: int,
        first_token_ms: int | None,
    ) -> None:
        if error is None or progress.parts:
            meta = progress.answer_meta
            await store.save_assistant_message(
                self._pool,
                message_id=reply_id,
                conversation_id=request.conversation_id,
                user_id=request.user_id,
                content="".join(progress.parts),
                agent=progress.route.route if progress.route else None,
                status="complete" if error is None else "interrupted",
                latency_ms=latency_ms,
                model=meta.get("model") or progress.serving_model or self._providers.composer.name,
                metadata={
                    **meta,
                    "first_token_ms": first_token_ms,
                    "route": progress.route.model_dump() if progress.route else None,
                    "rerank": progress.rerank_info,
                    "sources": [source_view(p, i + 1) for i, p in enumerate(progress.passages)],
                    **({"error": error.code} if error else {}),
                },
            )
        await store.set_message_status(
            self._pool, user_message_id, "answered" if error is None else "failed"
        )


async def _drain(queue: asyncio.Queue[TurnEvent | None]) -> AsyncIterator[TurnEvent]:
    while (event := await queue.get()) is not None:
        yield event


def now_utc() -> datetime:
    """The server's clock, for responses that carry a timestamp."""
    return datetime.now(UTC)
