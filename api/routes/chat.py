"""Chat: the same pipeline as JSON or as a Server-Sent Events stream, and resuming a stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from api import ui_stream
from api.deps import ServicesDep, client_address, enforce_rate_limit, verify_user
from api.errors import ApiError
from api.schemas import IDENTIFIER, USER_TOKEN, ChatRequest, ChatResponse, ErrorResponse
from services import Services
from store import messages
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
from turns.resume import parse_last_event_id, resume
from turns.runner import TurnRequest

router = APIRouter(prefix="/chat", tags=["chat"])

CONVERSATION_BUSY = (
    "Une réponse est déjà en cours dans cette conversation. Attendez-la avant d'envoyer un "
    "nouveau message : celui-ci est bien enregistré mais ne sera pas traité."
)
# The same answer whether the conversation does not exist or belongs to someone else, so the
# API never tells which ids exist.
CONVERSATION_NOT_FOUND = ("conversation_not_found", "Cette conversation n'existe pas.")
MESSAGE_NOT_FOUND = ("message_not_found", "Ce message n'existe pas.")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "WIDGET_SECRET is set and user_token is wrong"},
    404: {"model": ErrorResponse, "description": "Another user's conversation"},
    409: {"model": ErrorResponse, "description": "MULTITASK=reject and a turn is running"},
    413: {"model": ErrorResponse, "description": "Body over 64 KB"},
    422: {"model": ErrorResponse, "description": "Invalid payload"},
    429: {"model": ErrorResponse, "description": "Too many messages"},
    503: {"model": ErrorResponse, "description": "Database unavailable; retry"},
}


async def _start(
    body: ChatRequest, request: Request, services: Services
) -> AsyncIterator[TurnEvent]:
    verify_user(services, body.user_id, body.user_token)
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
        raise ApiError(404, *CONVERSATION_NOT_FOUND) from exc
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


STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "Events: metadata, route, sources, token (many), then end or error; each "
        "with an id (see turns/events.py) to resume from.",
    },
}


def _sse(events: AsyncIterator[TurnEvent], services: Services) -> EventSourceResponse:
    async def encode() -> AsyncIterator[ServerSentEvent]:
        async for event in events:
            yield ServerSentEvent(
                data=json.dumps(event.data(), ensure_ascii=False),
                event=event.kind,
                id=str(event.id),
            )

    return EventSourceResponse(
        encode(),
        ping=services.settings.sse_ping_seconds,
        headers={"Cache-Control": "no-cache"},
    )


@router.post("/stream", response_class=EventSourceResponse, responses={**ERRORS, **STREAM_RESPONSE})
async def chat_stream(
    body: ChatRequest,
    request: Request,
    services: ServicesDep,
    protocol: ui_stream.ProtocolQuery = None,
    protocol_header: ui_stream.ProtocolHeader = None,
) -> EventSourceResponse:
    """Stream the answer as Server-Sent Events, with a heartbeat comment for proxies."""
    events = await _start(body, request, services)
    if "ai-sdk" in (protocol, protocol_header):
        return ui_stream.response(events, services.settings.sse_ping_seconds)
    return _sse(events, services)


@router.get(
    "/stream/{message_id}",
    response_class=EventSourceResponse,
    responses={
        401: ERRORS[401],
        404: {"model": ErrorResponse, "description": "No such answer for this user"},
        **STREAM_RESPONSE,
    },
)
async def resume_stream(
    message_id: Annotated[UUID, Path(description="The answer's id (`metadata.message_id`)")],
    user_id: Annotated[str, Query(pattern=IDENTIFIER, description="The conversation's owner")],
    services: ServicesDep,
    user_token: Annotated[str | None, Query(pattern=USER_TOKEN)] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
) -> EventSourceResponse:
    """The events after `Last-Event-ID`: live while the turn runs (on any worker), then from
    the stored answer once it has ended."""
    verify_user(services, user_id, user_token)
    record = await messages.find_turn(services.pool, message_id)
    if record is None or record.owner != user_id:
        raise ApiError(404, *MESSAGE_NOT_FOUND)
    events = resume(services.pool, services.turns, record, parse_last_event_id(last_event_id))
    return _sse(events, services)
