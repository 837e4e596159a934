"""The domain's types, shared by the store, the providers, the graph and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from langchain_core.messages import AnyMessage
from pydantic import BaseModel, Field

Route = Literal["audrey", "carole", "escalate"]
"""Who answers a turn: one of the two specialists, or a person (escalate)."""
Specialist = Literal["audrey", "carole"]
Reply = Literal["acknowledgement", "yes_no", "edit", "answer", "complaint"]
"""How a message reacts to the answer just before it: thanks, a yes or a no, an edit of that
answer ("plus court", "en anglais"), a reply to the question the answer asked, or a complaint
about the answer ("c'est nul")."""
AgentOwner = Literal["audrey", "carole", "shared"]
"""Whose knowledge a document is: a specialist's, or shared by both."""

# The single list of routes: the graph's persona nodes, the API's schemas and the evals read it.
ROUTES: tuple[Route, ...] = get_args(Route)
SPECIALISTS: tuple[Specialist, ...] = get_args(Specialist)
AGENT_OWNERS: tuple[AgentOwner, ...] = get_args(AgentOwner)


def as_specialist(name: str | None) -> Specialist | None:
    """`name` narrowed to a specialist, or None (escalate, a person, unknown)."""
    match name:
        case "audrey":
            return "audrey"
        case "carole":
            return "carole"
        case _:
            return None


class RouteDecision(BaseModel):
    """Which persona answers, how sure the router is, and why (recorded, never streamed)."""

    route: Route
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str
    router: str = Field(default="", description="The router that decided, e.g. embedding/e5-logreg")
    scores: dict[str, float] = Field(default_factory=dict)


@dataclass(frozen=True)
class RouteQuery:
    """What a router decides on: the message and what the conversation says about it.

    Built by `graph.conversation.route_query`, the one owner of the follow-up and
    previous-specialist rules, so every router (and the evals) reads them the same way.
    """

    message: str
    previous: Specialist | None = None
    follow_up: bool = False
    history: Sequence[AnyMessage] = ()
    # Set when the message reacts to the previous specialist's answer, which came just before.
    reply: Reply | None = None
    # A short follow-up read with the question before it (what retrieval searches for);
    # the message itself otherwise.
    in_context: str = ""

    @property
    def text_in_context(self) -> str:
        """The message as it should be read: with its context when it is a short follow-up."""
        return self.in_context or self.message


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

    @property
    def label(self) -> str:
        """How the passage is named in an answer: its title and section."""
        title = self.title or self.source
        return f"{title} — {self.section}" if self.section else title


class Usage(BaseModel):
    """Tokens spent on one answer (zero for the extractive generator)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
