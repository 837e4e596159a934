"""The turns running in this process, for clients that resume their stream here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from turns.events import (
    SOURCES_ID,
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
    text_offset,
    token_id,
)


class LiveTurn:
    """Everything a running turn has emitted: its first events, its text, its final event."""

    def __init__(self) -> None:
        self.head: list[MetadataEvent | RouteEvent | SourcesEvent] = []
        self.parts: list[str] = []
        self.length = 0
        self.final: EndEvent | ErrorEvent | None = None
        self._changed = asyncio.Event()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def record(self, event: TurnEvent) -> None:
        match event:
            case MetadataEvent() | RouteEvent() | SourcesEvent():
                self.head.append(event)
            case TokenEvent(text=text):
                self.parts.append(text)
                self.length += len(text)
            case EndEvent() | ErrorEvent():
                self.final = event
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, after: int) -> AsyncIterator[TurnEvent]:
        """The events after id `after`, then the ones still to come; the text already
        streamed comes as one token event."""
        sent = after
        while True:
            changed = self._changed
            for event in self.head:
                if event.id > sent:
                    yield event
                    sent = event.id
            offset = text_offset(sent) if sent >= SOURCES_ID else None
            if offset is not None and self.length > offset:
                token = TokenEvent(text=self.text[offset:], id=token_id(self.length))
                yield token
                sent = token.id
            if self.final is not None and self.final.id > sent:
                yield self.final
                return
            if self.final is not None:
                return
            await changed.wait()
