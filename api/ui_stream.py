"""The turn's events in the Vercel AI SDK's UI message stream protocol (v1), for `useChat`.

A second encoder of the same events as the SSE stream (`turns/events.py`), chosen per request
with `?protocol=ai-sdk` or the header `X-Stream-Protocol: ai-sdk` on `POST /api/chat/stream`:
one pipeline, two wire formats. Each chunk is an SSE `data:` line holding one JSON object, and
the stream ends with `data: [DONE]`, as the SDK's `DefaultChatTransport` expects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent

from turns.events import (
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    Source,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
)

StreamProtocol = Literal["sse", "ai-sdk"]
ProtocolQuery = Annotated[
    StreamProtocol | None,
    Query(
        description="`ai-sdk`: the Vercel AI SDK's UI message stream protocol instead of the "
        "project's events (same as the header `X-Stream-Protocol: ai-sdk`)"
    ),
]
ProtocolHeader = Annotated[StreamProtocol | None, Header(alias="X-Stream-Protocol")]

HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "x-vercel-ai-ui-message-stream": "v1",
}
TEXT_ID = "text-1"
MEDIA_TYPES = {".md": "text/markdown", ".html": "text/html", ".htm": "text/html"}

Chunk = dict[str, Any]


def _source_document(source: Source) -> Chunk:
    title = f"{source.title} — {source.section}" if source.section else source.title
    return {
        "type": "source-document",
        "sourceId": str(source.number),
        "mediaType": MEDIA_TYPES.get(PurePosixPath(source.source).suffix.lower(), "text/plain"),
        "title": title or source.source,
        "filename": source.source,
    }


class UIMessageEncoder:
    """Maps one turn's events to UI message chunks; keeps whether the text part is open."""

    def __init__(self) -> None:
        self._text_open = False

    def _close_text(self) -> list[Chunk]:
        if not self._text_open:
            return []
        self._text_open = False
        return [{"type": "text-end", "id": TEXT_ID}]

    def chunks(self, event: TurnEvent) -> list[Chunk]:
        match event:
            case MetadataEvent():
                return [
                    {
                        "type": "start",
                        "messageId": event.message_id,
                        "messageMetadata": event.data(),
                    },
                    {"type": "start-step"},
                ]
            case RouteEvent():
                return [{"type": "data-route", "data": event.data()}]
            case SourcesEvent():
                return [
                    *(_source_document(s) for s in event.sources),
                    {"type": "data-sources", "data": event.data()},
                ]
            case TokenEvent():
                start: list[Chunk] = []
                if not self._text_open:
                    self._text_open = True
                    start = [{"type": "text-start", "id": TEXT_ID}]
                return [*start, {"type": "text-delta", "id": TEXT_ID, "delta": event.text}]
            case EndEvent():
                return [
                    *self._close_text(),
                    {"type": "finish-step"},
                    {"type": "finish", "finishReason": "stop", "messageMetadata": event.data()},
                ]
            case ErrorEvent():
                return [
                    *self._close_text(),
                    {"type": "error", "errorText": event.message},
                    {"type": "finish", "finishReason": "error", "messageMetadata": event.data()},
                ]
        return []


async def encode(events: AsyncIterator[TurnEvent]) -> AsyncIterator[ServerSentEvent]:
    """The SSE messages of the UI message stream, `[DONE]` last."""
    encoder = UIMessageEncoder()
    async for event in events:
        for chunk in encoder.chunks(event):
            yield ServerSentEvent(data=json.dumps(chunk, ensure_ascii=False))
    yield ServerSentEvent(data="[DONE]")


def response(events: AsyncIterator[TurnEvent], ping_seconds: float) -> EventSourceResponse:
    """The streaming response, with the header the AI SDK checks and the proxy heartbeat."""
    return EventSourceResponse(encode(events), ping=ping_seconds, headers=HEADERS)
