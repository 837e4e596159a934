"""Resume a stream after a network drop: the events after a given id, from any worker.

In order of preference: the turn runs in this process (its events, live); it runs elsewhere
(its draft in the database, polled until it ends); it has ended (the stored answer, replayed
with the ids the live stream used). Ownership is checked by the caller (the API route).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from core.domain import RouteDecision, Usage
from core.text import tokens_of
from store import drafts, messages
from store.messages import StoredMessage, TurnRecord
from store.postgres import Pool
from turns.events import (
    METADATA_ID,
    ROUTE_ID,
    SOURCES_ID,
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    Source,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
    final_id,
    text_offset,
    token_id,
)
from turns.runner import INTERRUPTED, TurnRunner

POLL_SECONDS = 0.25


def _route_event(route: dict[str, Any] | None) -> RouteEvent | None:
    if not route:
        return None
    decision = RouteDecision.model_validate(route)
    return RouteEvent(
        id=ROUTE_ID,
        agent=decision.route,
        reason=decision.reason,
        confidence=decision.confidence,
        router=decision.router,
    )


def _sources_event(sources: list[dict[str, Any]] | None, degraded: bool) -> SourcesEvent | None:
    if sources is None:
        return None
    return SourcesEvent(
        id=SOURCES_ID, sources=[Source.model_validate(s) for s in sources], degraded=degraded
    )


def _tokens(text: str, offset: int) -> list[TokenEvent]:
    """The answer after character `offset`, as word tokens numbered like the live stream."""
    events = []
    position = offset
    for piece in tokens_of(text[offset:]):
        position += len(piece)
        events.append(TokenEvent(id=token_id(position), text=piece))
    return events


def _final(answer: StoredMessage) -> EndEvent | ErrorEvent:
    meta = answer.metadata
    if answer.status == "complete":
        return EndEvent(
            id=final_id(len(answer.content)),
            message_id=str(answer.id),
            agent=answer.agent or "escalate",
            model=answer.model or "",
            latency_ms=answer.latency_ms or 0,
            first_token_ms=meta.get("first_token_ms"),
            usage=Usage.model_validate(meta.get("usage") or {}),
            llm=bool(meta.get("llm", False)),
            note=meta.get("note"),
            prompt_version=meta.get("prompt_version"),
        )
    return ErrorEvent(
        id=final_id(len(answer.content)),
        code=str(meta.get("error") or "generation_interrupted"),
        message=INTERRUPTED,
        retryable=True,
        message_id=str(answer.id),
    )


def _metadata(record: TurnRecord) -> MetadataEvent:
    return MetadataEvent(
        id=METADATA_ID,
        conversation_id=record.conversation_id,
        message_id=str(record.reply_id),
        user_message_id=str(record.user_message_id),
    )


async def resume(
    pool: Pool, runner: TurnRunner, record: TurnRecord, after: int
) -> AsyncIterator[TurnEvent]:
    """The events of the turn answering as `record.reply_id` after id `after`."""
    live = runner.live(record.reply_id)
    if live is not None:
        async for event in live.follow(after):
            yield event
        return
    sent = after
    if sent < METADATA_ID:
        yield _metadata(record)
        sent = METADATA_ID
    while True:
        answer = await messages.get_message(pool, record.reply_id)
        if answer is not None:
            async for event in _replay(answer, sent):
                yield event
            return
        draft = await drafts.get(pool, record.reply_id)
        if draft is not None:
            for event in _from_draft(draft, sent):
                yield event
                sent = event.id
        current = await messages.find_turn(pool, record.reply_id)
        if current is None or current.status not in ("received", "running"):
            if await messages.get_message(pool, record.reply_id) is None:
                # Ended without an answer (failed before any text): say so, once.
                length = len(draft.content) if draft is not None else 0
                yield ErrorEvent(
                    id=final_id(length),
                    code="generation_failed",
                    message=INTERRUPTED,
                    retryable=True,
                    message_id=str(record.reply_id),
                )
                return
            continue
        live = runner.live(record.reply_id)
        if live is not None:  # it may have started here meanwhile
            async for event in live.follow(sent):
                yield event
            return
        await asyncio.sleep(POLL_SECONDS)


def _from_draft(draft: drafts.Draft, sent: int) -> list[TurnEvent]:
    events: list[TurnEvent] = []
    route = _route_event(draft.route)
    if route is not None and route.id > sent:
        events.append(route)
    sources = _sources_event(draft.sources, draft.degraded)
    if sources is not None and sources.id > sent:
        events.append(sources)
    last = max([sent, *(e.id for e in events)])
    if last >= SOURCES_ID:
        offset = text_offset(last)
        if len(draft.content) > offset:
            events.append(TokenEvent(id=token_id(len(draft.content)), text=draft.content[offset:]))
    return events


async def _replay(answer: StoredMessage, sent: int) -> AsyncIterator[TurnEvent]:
    meta = answer.metadata
    head: list[TurnEvent | None] = [
        _route_event(meta.get("route")),
        _sources_event(meta.get("sources"), bool((meta.get("rerank") or {}).get("degraded"))),
    ]
    for event in head:
        if event is not None and event.id > sent:
            yield event
            sent = event.id
    for token in _tokens(answer.content, text_offset(max(sent, SOURCES_ID))):
        if token.id > sent:
            yield token
    final = _final(answer)
    if final.id > sent:
        yield final


def parse_last_event_id(value: str | None) -> int:
    """`Last-Event-ID` as sent back by a client (absent or not a number: from the start)."""
    if value is None:
        return 0
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return 0
