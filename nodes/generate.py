"""generate: Audrey's and Carole's answers, streamed token by token."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graph.context import Context
from graph.conversation import latest_user_message
from graph.providers.composer import AnswerRequest
from graph.state import ChatState, Route, Usage
from prompts.personas import PROMPT_VERSION

EMBEDDED_NOTE = (
    "Embedded mode: this answer is composed from knowledge-base sentences; no LLM was used."
)


async def compose_answer(
    route: Route, state: ChatState, runtime: Runtime[Context]
) -> dict[str, Any]:
    """Stream the composer's tokens to the client and return the finished message.

    Only these tokens go to the stream writer: router and reranker output never reaches it.
    """
    composer = runtime.context.providers.composer
    request = AnswerRequest(
        route=route,
        question=latest_user_message(state.messages),
        query=state.query,
        passages=state.passages,
        history=state.messages[:-1],
    )
    parts: list[str] = []
    model = composer.name
    usage = Usage()
    extra: dict[str, object] = {}
    started = time.perf_counter()
    first_token_s: float | None = None
    async for chunk in composer.astream(request):
        if chunk.text:
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
            parts.append(chunk.text)
            runtime.stream_writer({"token": chunk.text})
        if "serving_model" in chunk.meta:
            # Known before the answer ends, so an interrupted answer still records its model.
            runtime.stream_writer({"serving_model": chunk.meta["serving_model"]})
        if chunk.model:
            model = chunk.model
        if chunk.usage:
            usage = chunk.usage
        extra.update(chunk.meta)
    meta: dict[str, Any] = {
        "agent": route,
        "model": model,
        "llm": composer.uses_llm,
        "prompt_version": PROMPT_VERSION,
        "usage": usage.model_dump(),
        "sources": [p.id for p in state.passages],
        "generate_ms": round((time.perf_counter() - started) * 1000, 1),
        "first_token_ms": None if first_token_s is None else round(first_token_s * 1000, 1),
        **extra,
    }
    if not composer.uses_llm:
        meta["note"] = EMBEDDED_NOTE
    message = AIMessage(
        content="".join(parts), name=route, id=state.reply_id, response_metadata=dict(meta)
    )
    return {"messages": [message], "answer_meta": meta}


async def audrey(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Audrey answers: marketing automation."""
    return await compose_answer("audrey", state, runtime)


async def carole(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Carole answers: content creation."""
    return await compose_answer("carole", state, runtime)
