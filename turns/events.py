"""The stream's contract: every event a turn emits, as the SSE `event:` name and its JSON data.

`POST /api/chat/stream` sends them in this order: `metadata` (always first), `route`,
`sources`, many `token`s, then `end` on success or `error` instead. `POST /api/chat` folds the
same events into one JSON answer.
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


class _Event(BaseModel):
    kind: str

    def data(self) -> dict[str, Any]:
        """The SSE `data:` payload (everything but the event's name)."""
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
