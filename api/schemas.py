"""The HTTP payloads: v2 (`user_id`, `conversation_id`) and v1 (`userId`, `conversationId`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.domain import Route
from store.messages import StoredMessage
from turns.events import Source

MAX_MESSAGE_CHARS = 4000
MAX_COMMENT_CHARS = 2000
# user_id and conversation_id: 1 to 128 characters, letters, digits and . _ : @ -
IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# HMAC-SHA256 in hex (WIDGET_SECRET)
USER_TOKEN = r"^[0-9a-fA-F]{64}$"
HISTORY_PAGE_MAX = 200


class ChatRequest(BaseModel):
    """A widget's message, in either payload version (the seed's A/B migration sends both)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    user_id: str = Field(
        validation_alias=AliasChoices("user_id", "userId"), pattern=IDENTIFIER, examples=["u-42"]
    )
    conversation_id: str = Field(
        validation_alias=AliasChoices("conversation_id", "conversationId"),
        pattern=IDENTIFIER,
        examples=["conv-1"],
    )
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    timestamp: datetime | None = Field(
        default=None, description="The client's send time (ISO 8601)"
    )
    user_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("user_token", "userToken"),
        pattern=USER_TOKEN,
        description="HMAC-SHA256(WIDGET_SECRET, user_id) in hex, when the site sets a secret",
    )
    api_version: Literal["v1", "v2"] = Field(default="v2", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _detect_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and "message" not in data and "messages" in data:
            data = {**_ai_sdk_fields(data), **data}
        if isinstance(data, dict) and ("userId" in data or "conversationId" in data):
            return {**data, "api_version": "v1"}
        return data


def _ai_sdk_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The Vercel AI SDK's default body (`useChat`): `id` names the conversation and the last
    user message's text parts are the message; `user_id` comes in the transport's `body`."""
    fields: dict[str, Any] = {}
    if isinstance(data.get("id"), str):
        fields["conversation_id"] = data["id"]
    history = data.get("messages")
    if not isinstance(history, list):
        return fields
    users = [m for m in history if isinstance(m, dict) and m.get("role") == "user"]
    parts = users[-1].get("parts") if users else None
    if isinstance(parts, list):
        texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        fields["message"] = "".join(t for t in texts if isinstance(t, str))
    return fields


class ChatResponse(BaseModel):
    """The non-streaming answer; the seed's widget reads `message`, `agent` and `timestamp`."""

    message: str
    agent: Route
    timestamp: datetime
    conversation_id: str
    message_id: str
    sources: list[Source]
    model: str
    latency_ms: int
    llm: bool
    note: str | None = None


class MessageOut(BaseModel):
    """One message of a conversation's history.

    `role`: user, assistant (Audrey, Carole or the escalation answer, see `agent`), human_agent
    (a member of the team, `author` when given), notice (an automatic notice of the service).
    """

    id: str
    role: str
    content: str
    agent: str | None
    status: str
    created_at: datetime
    sources: list[Source] = Field(default_factory=list, description="What an answer cites")
    rating: Literal["up", "down"] | None = Field(default=None, description="The user's feedback")
    author: str | None = None

    @classmethod
    def of(cls, row: StoredMessage, rating: Literal["up", "down"] | None = None) -> MessageOut:
        author = row.metadata.get("author") if row.role == "human_agent" else None
        return cls(
            id=str(row.id),
            role=row.role,
            content=row.content,
            agent=row.agent,
            status=row.status,
            created_at=row.created_at,
            sources=_stored_sources(row.metadata),
            rating=rating,
            author=author if isinstance(author, str) else None,
        )


def _stored_sources(metadata: dict[str, Any]) -> list[Source]:
    """The sources saved with an answer (none for other rows, or rows of an older shape)."""
    stored = metadata.get("sources")
    if not isinstance(stored, list):
        return []
    try:
        return [Source.model_validate(s) for s in stored]
    except ValidationError:
        return []


class HistoryResponse(BaseModel):
    conversation_id: str
    status: Literal["active", "waiting_for_human"] = Field(
        default="active", description="waiting_for_human: the team has it, the bot does not answer"
    )
    messages: list[MessageOut]
    next_before: str | None = Field(
        default=None, description="Pass as `before` for the previous page; null on the first one"
    )


class FeedbackRequest(BaseModel):
    """A user's thumbs up or down on an answer, with an optional comment."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    user_id: str = Field(validation_alias=AliasChoices("user_id", "userId"), pattern=IDENTIFIER)
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    user_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("user_token", "userToken"),
        pattern=USER_TOKEN,
        description="As for a chat message, when the site sets WIDGET_SECRET",
    )


class FeedbackResponse(BaseModel):
    message_id: str
    rating: Literal["up", "down"]
    comment: str | None
    created_at: datetime
    updated_at: datetime


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    mode: Literal["embedded", "production"]
    llm: bool
    providers: dict[str, str]
    documents: dict[str, int]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx: `error.message` is written for the widget to show as is."""

    error: ErrorBody
    detail: Any = None
