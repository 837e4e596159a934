"""The v1 design, rebuilt for comparison: every step after the previous one, one JSON at the end.

The seed's v1 (an n8n workflow) read the history, asked the router, embedded the question,
searched, reranked, waited for the LLM's whole answer, saved the exchange and only then
answered the widget. This is that shape on this project's own providers and store (the same
clients, the same fake provider, the same database as the server it is compared with), so the
difference measured is the design's, not the parts'. For `bench.ttft_ideal` only.

    .venv/bin/python -m bench.v1_baseline        # HOST/PORT and the provider settings from env
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from pydantic import BaseModel

from core.settings import Settings, get_settings
from graph.conversation import route_query, search_text
from nodes.retrieve import SEARCH_SCOPES
from providers import Providers, make_providers
from providers.generator import AnswerRequest
from services import open_database, sync_knowledge_base
from store import messages
from store.postgres import Pool


class V1Request(BaseModel):
    user_id: str
    conversation_id: str
    message: str


class V1Response(BaseModel):
    """v1's reply: the whole answer at once, with its timings per step (ms)."""

    answer: str
    agent: str
    steps_ms: dict[str, float]


@dataclass(frozen=True)
class V1Services:
    settings: Settings
    pool: Pool
    providers: Providers


class StepClock:
    """Times each step of one request, in order."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.steps[step] = round((now - self._last) * 1000, 1)
        self._last = now


async def answer(services: V1Services, request: V1Request) -> V1Response:
    """One v1 turn: history, route, embed, search, rerank, whole answer, save, in sequence."""
    settings, pool, providers = services.settings, services.pool, services.providers
    clock = StepClock()
    stored = await messages.list_messages(pool, request.conversation_id, limit=20)
    history: list[AnyMessage] = [
        HumanMessage(m.content) if m.role == "user" else AIMessage(m.content, name=m.agent)
        for m in stored
    ]
    conversation = [*history, HumanMessage(request.message)]
    clock.lap("history")
    decision = await providers.router.route(route_query(conversation))
    clock.lap("route")
    query = search_text(conversation)
    embedding = await providers.embeddings.query(query)
    clock.lap("embed")
    found = await providers.retriever.search(
        embedding, query, {decision.route: SEARCH_SCOPES[decision.route]}, settings.retrieve_k
    )
    candidates = found[decision.route]
    clock.lap("search")
    passages = await providers.reranker.rerank(query, candidates, settings.rerank_top_n)
    clock.lap("rerank")
    parts: list[str] = []
    async for chunk in providers.generator.astream(
        AnswerRequest(
            route=decision.route,
            question=request.message,
            query=query,
            passages=passages,
            history=history,
        )
    ):
        parts.append(chunk.text)
    text = "".join(parts)
    clock.lap("llm_answer")
    user_message, reply = uuid.uuid4(), uuid.uuid4()
    await messages.save_user_message(
        pool,
        message_id=user_message,
        reply_id=reply,
        conversation_id=request.conversation_id,
        user_id=request.user_id,
        content=request.message,
        metadata={"bench": "v1"},
        worker="v1-baseline",
        lease_seconds=settings.turn_lease_seconds,
    )
    await messages.finish_turn(
        pool,
        user_message_id=user_message,
        conversation_id=request.conversation_id,
        user_id=request.user_id,
        status="complete",
        answer=messages.Answer(
            message_id=reply,
            content=text,
            agent=decision.route,
            status="complete",
            latency_ms=round(sum(clock.steps.values())),
            model=providers.generator.name,
            metadata={"bench": "v1"},
        ),
    )
    clock.lap("save")
    return V1Response(answer=text, agent=decision.route, steps_ms=clock.steps)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings) as (_, pool):
            providers = await make_providers(settings, pool)
            await sync_knowledge_base(settings, pool, providers)
            app.state.v1 = V1Services(settings, pool, providers)
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/chat")
    async def chat(body: V1Request, request: Request) -> V1Response:
        return await answer(request.app.state.v1, body)

    return app


def main() -> None:
    settings = get_settings()
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning"
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
