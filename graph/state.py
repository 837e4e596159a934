"""The graph's typed state and the domain types that travel in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field

Route = Literal["audrey", "carole", "escalate"]
Specialist = Literal["audrey", "carole"]
AgentOwner = Literal["audrey", "carole", "shared"]
ROUTES: tuple[Route, ...] = ("audrey", "carole", "escalate")


class RouteDecision(BaseModel):
    """Which persona answers, how sure the router is, and why (recorded, never streamed)."""

    route: Route
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str
    router: str = Field(default="", description="The router that decided, e.g. embedding/e5-knn")
    scores: dict[str, float] = Field(default_factory=dict)


class Passage(BaseModel):
    """A knowledge-base chunk as retrieved, then reranked."""

    id: int
    content: str
    source: str
    title: str = ""
    section: str = ""
    agent_owner: AgentOwner
    similarity: float = 0.0
    score: float = 0.0
    rerank_score: float | None = None


class Usage(BaseModel):
    """Tokens spent on one answer (zero for the extractive composer)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class ChatState:
    """One conversation's state, checkpointed per conversation_id.

    `messages` accumulates across turns; every other field belongs to the current turn and is
    reset by the turn's input (see `graph.turns.turn_input`).
    """

    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)
    # When set on input, the router is bypassed (tests, replays, a forced specialist).
    route: RouteDecision | None = None
    # The text searched: the message, or the message with its context for a short follow-up.
    query: str = ""
    # Candidates per specialist, retrieved while the router decides.
    candidates: dict[str, list[Passage]] = field(default_factory=dict)
    passages: list[Passage] = field(default_factory=list)
    # How reranking went: reranker name, degraded when it failed and retrieval order was kept.
    rerank_info: dict[str, Any] = field(default_factory=dict)
    # What the generator reports about its answer: model, usage, prompt version...
    answer_meta: dict[str, Any] = field(default_factory=dict)
    # The id the assistant message will carry, in the checkpoint and in the messages table.
    reply_id: str | None = None
