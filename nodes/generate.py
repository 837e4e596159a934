"""generate: the persona's answer, streamed token by token (Audrey and Carole)."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from core.domain import Route, Usage
from graph.context import Context
from graph.conversation import latest_user_message
from graph.state import AnswerMeta, ChatState, Handoff, StreamChunk
from prompts.personas import PROMPT_VERSION
from providers.generator import AnswerRequest

EMBEDDED_NOTE = (
    "Embedded mode: this answer is composed from knowledge-base sentences; no LLM was used."
)


async def generate(
    route: Route, state: ChatState, runtime: Runtime[Context], handoff: Handoff | None = None
) -> dict[str, Any]:
    """Stream the generator's tokens to the client and return the finished message.

    Only these tokens go to the stream writer (or the host's `token_sink`): router and reranker
    output never reaches it.
    """
    generator = runtime.context.require_providers().generator
    write = runtime.context.token_sink or runtime.stream_writer
    request = AnswerRequest(
        route=route,
        question=latest_user_message(state.messages),
        query=state.query,
        passages=state.passages,
        history=state.messages[:-1],
    )
    parts: list[str] = []
    model = generator.name
    usage = Usage()
    fallbacks: tuple[str, ...] = ()
    started = time.perf_counter()
    first_token_s: float | None = None
    async for chunk in generator.astream(request):
        if chunk.text:
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
            parts.append(chunk.text)
            write(StreamChunk(token=chunk.text))
        if chunk.serving_model:
            write(StreamChunk(serving_model=chunk.serving_model))
        model = chunk.model or model
        usage = chunk.usage or usage
        fallbacks = chunk.fallbacks or fallbacks
    meta = AnswerMeta(
        agent=route,
        model=model,
        llm=generator.uses_llm,
        prompt_version=PROMPT_VERSION,
        usage=usage,
        sources=[p.id for p in state.passages],
        generate_ms=round((time.perf_counter() - started) * 1000, 1),
        first_token_ms=None if first_token_s is None else round(first_token_s * 1000, 1),
        note=None if generator.uses_llm else EMBEDDED_NOTE,
        fallbacks=list(fallbacks),
        handoff=handoff,
    )
    message = AIMessage(
        content="".join(parts),
        name=route,
        id=state.reply_id,
        response_metadata=meta.model_dump(mode="json", exclude_none=True),
    )
    return {"messages": [message], "answer_meta": meta}


async def audrey(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Audrey answers: marketing automation."""
    return await generate("audrey", state, runtime)


async def carole(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Carole answers: content creation."""
    return await generate("carole", state, runtime)
