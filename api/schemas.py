"""The HTTP payloads: v2 (`user_id`, `conversation_id`) and v1 (`userId`, `conversationId`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from core.domain import Route
from turns.events import Source

MAX_MESSAGE_CHARS = 4000
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
        if isinstance(data, dict) and ("userId" in data or "conversationId" in data):
            return {**data, "api_version": "v1"}
        return data


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
    """One message of a conversation's history."""

    id: str
    role: str
    content: str
    agent: str | None
    status: str
    created_at: datetime


class HistoryResponse(BaseModel):
    conversation_id: str
    messages: list[MessageOut]
    next_before: str | None = Field(
        default=None, description="Pass as `before` for the previous page; null on the first one"
    )


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
