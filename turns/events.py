"""The stream's contract: every event a turn emits, as the SSE `event:` name and its JSON data.

`POST /api/chat/stream` sends them in this order: `metadata` (always first), `route`,
`sources`, many `token`s, then `end` on success or `error` instead. `POST /api/chat` folds the
same events into one JSON answer.

Every event carries an SSE `id` that is its position in the stream, computed from the answer
itself: `metadata` 1, `route` 2, `sources` 3, a `token` 3 + the number of characters of the
answer up to the end of that token, `end`/`error` one more than the last token. So any worker
can resume after any id (`GET /api/chat/stream/{message_id}` with `Last-Event-ID`), tokens may
be merged when the client falls behind, and a replay from the stored answer numbers its events
exactly as the live stream did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from core.domain import AgentOwner, Passage, Route, Usage

EXCERPT_CHARS = 280


class Source(BaseModel):
    """A passage the answer may cite, as the widget shows it."""

    number: int = Field(description="The [n] the answer cites it by")
    id: int
    title: str
    section: str
    source: str
    agent_owner: AgentOwner
    score: float
    excerpt: str

    @classmethod
    def of(cls, passage: Passage, number: int) -> Source:
        return cls(
            number=number,
            id=passage.id,
            title=passage.title,
            section=passage.section,
            source=passage.source,
            agent_owner=passage.agent_owner,
            score=passage.rerank_score if passage.rerank_score is not None else passage.score,
            excerpt=passage.content[:EXCERPT_CHARS],
        )


def sources_of(passages: list[Passage]) -> list[Source]:
    """The passages numbered as the answer cites them ([1] is the first)."""
    return [Source.of(p, i + 1) for i, p in enumerate(passages)]


METADATA_ID, ROUTE_ID, SOURCES_ID = 1, 2, 3


def token_id(text_length: int) -> int:
    """The id of a token event that ends at character `text_length` of the answer."""
    return SOURCES_ID + text_length


def final_id(text_length: int) -> int:
    """The id of the `end` or `error` event of an answer of `text_length` characters."""
    return SOURCES_ID + text_length + 1


def text_offset(last_event_id: int) -> int:
    """How much of the answer a client that last received `last_event_id` already has."""
    return max(0, last_event_id - SOURCES_ID)


class _Event(BaseModel):
    kind: str
    id: int = Field(default=0, exclude=True, description="The SSE id: see the module's doc")

    def data(self) -> dict[str, Any]:
        """The SSE `data:` payload (everything but the event's name and id)."""
        return self.model_dump(mode="json", exclude={"kind"})


class MetadataEvent(_Event):
    """Sent first, as soon as the user's message is stored: the widget knows it was received."""

    kind: Literal["metadata"] = "metadata"
    conversation_id: str
    message_id: str = Field(description="The answer's id")
    user_message_id: str


class RouteEvent(_Event):
    kind: Literal["route"] = "route"
    agent: Route
    reason: str
    confidence: float
    router: str


class SourcesEvent(_Event):
    kind: Literal["sources"] = "sources"
    sources: list[Source]
    degraded: bool = Field(default=False, description="Reranking failed; retrieval order kept")


class TokenEvent(_Event):
    kind: Literal["token"] = "token"
    text: str


class EndEvent(_Event):
    kind: Literal["end"] = "end"
    message_id: str
    agent: Route
    model: str
    latency_ms: int
    first_token_ms: int | None
    usage: Usage
    llm: bool
    note: str | None = None
    prompt_version: str | None = None


class ErrorEvent(_Event):
    kind: Literal["error"] = "error"
    code: str
    message: str = Field(description="French, for the widget to show as is")
    retryable: bool
    message_id: str


TurnEvent = Annotated[
    MetadataEvent | RouteEvent | SourcesEvent | TokenEvent | EndEvent | ErrorEvent,
    Field(discriminator="kind"),
]


def now_utc() -> datetime:
    """The server's clock, for responses that carry a timestamp."""
    return datetime.now(UTC)
