"""Chat: the same pipeline as JSON or as a Server-Sent Events stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.deps import ServicesDep, client_address, enforce_rate_limit
from api.errors import ApiError
from api.schemas import ChatRequest, ChatResponse, ErrorResponse
from services import Services
from store.messages import ConversationBusy, ConversationOwnedByAnotherUser
from turns.events import (
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    Source,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
    now_utc,
)
from turns.runner import TurnRequest

router = APIRouter(prefix="/chat", tags=["chat"])

CONVERSATION_BUSY = (
    "Une réponse est déjà en cours dans cette conversation. Attendez-la avant d'envoyer un "
    "nouveau message : celui-ci est bien enregistré mais ne sera pas traité."
)

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The conversation belongs to another user"},
    409: {"model": ErrorResponse, "description": "MULTITASK=reject and a turn is running"},
    422: {"model": ErrorResponse, "description": "Invalid payload"},
    429: {"model": ErrorResponse, "description": "Too many messages"},
}


async def _start(
    body: ChatRequest, request: Request, services: Services
) -> AsyncIterator[TurnEvent]:
    await enforce_rate_limit(services, f"user:{body.user_id}", f"ip:{client_address(request)}")
    try:
        return await services.turns.start(
            TurnRequest(
                conversation_id=body.conversation_id,
                user_id=body.user_id,
                message=body.message,
                client_timestamp=body.timestamp,
                api_version=body.api_version,
            )
        )
    except ConversationOwnedByAnotherUser as exc:
        raise ApiError(
            403,
            "conversation_forbidden",
            "Cette conversation appartient à un autre utilisateur.",
        ) from exc
    except ConversationBusy as exc:
        raise ApiError(409, "conversation_busy", CONVERSATION_BUSY) from exc


@router.post("", responses=ERRORS)
async def chat(body: ChatRequest, request: Request, services: ServicesDep) -> ChatResponse:
    """Answer in one JSON response (the seed's widget contract: `message`, `agent`, `timestamp`)."""
    events = await _start(body, request, services)
    parts: list[str] = []
    sources: list[Source] = []
    meta: MetadataEvent | None = None
    end: EndEvent | None = None
    async for event in events:
        match event:
            case MetadataEvent():
                meta = event
            case SourcesEvent():
                sources = event.sources
            case TokenEvent():
                parts.append(event.text)
            case EndEvent():
                end = event
            case ErrorEvent():
                raise ApiError(503 if not parts else 502, event.code, event.message)
    assert meta is not None
    assert end is not None
    return ChatResponse(
        message="".join(parts),
        agent=end.agent,
        timestamp=now_utc(),
        conversation_id=meta.conversation_id,
        message_id=end.message_id,
        sources=sources,
        model=end.model,
        latency_ms=end.latency_ms,
        llm=end.llm,
        note=end.note,
    )


@router.post(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        **ERRORS,
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events: metadata, route, sources, token (many), then end or error.",
        },
    },
)
async def chat_stream(
    body: ChatRequest, request: Request, services: ServicesDep
) -> EventSourceResponse:
    """Stream the answer as Server-Sent Events, with a heartbeat comment for proxies."""
    events = await _start(body, request, services)

    async def encode() -> AsyncIterator[ServerSentEvent]:
        number = 0
        async for event in events:
            number += 1
            yield ServerSentEvent(
                data=json.dumps(event.data(), ensure_ascii=False), event=event.kind, id=str(number)
            )

    return EventSourceResponse(
        encode(),
        ping=services.settings.sse_ping_seconds,
        headers={"Cache-Control": "no-cache"},
    )
