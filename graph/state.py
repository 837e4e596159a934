"""The graph's typed state: the conversation, one turn's working fields, and the turn's reset.

`messages` is the conversation and accumulates across turns. Every other field belongs to the
current turn: `begin_turn`, the graph's first node, sets each of them back to its default from
this definition (`turn_reset`), so a field added here can never leak into the next turn. A
caller passes options for one turn in `turn`, an ephemeral input that only `begin_turn` reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict, get_type_hints
from uuid import uuid4

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.channels.ephemeral_value import EphemeralValue
from langgraph.graph.message import add_messages
from pydantic import BaseModel, Field, TypeAdapter

from core.domain import Passage, Route, RouteDecision, Usage


class RerankInfo(BaseModel):
    """How reranking went: which reranker, and whether it failed (retrieval order kept)."""

    reranker: str
    degraded: bool = False
    error: str | None = None


class Handoff(BaseModel):
    """Why a turn was handed to a person (set by the escalate node)."""

    reason: str


class AnswerMeta(BaseModel):
    """What the generator reports about its answer; stored with the message and sent in `end`."""

    agent: Route
    model: str
    llm: bool
    prompt_version: str
    usage: Usage = Field(default_factory=Usage)
    sources: list[int] = Field(default_factory=list, description="ids of the passages given")
    generate_ms: float = 0.0
    first_token_ms: float | None = None
    note: str | None = Field(default=None, description="Said when no LLM wrote the answer")
    fallbacks: list[str] = Field(default_factory=list, description="models that failed first")
    handoff: Handoff | None = None


class TurnOptions(BaseModel):
    """What a caller may fix for one turn; all optional (LangGraph Studio sends none)."""

    reply_id: str | None = Field(default=None, description="id of the answer to write")
    route: RouteDecision | None = Field(default=None, description="bypass the router")


class StreamChunk(TypedDict, total=False):
    """What the generator writes to LangGraph's `custom` stream: the user's tokens, and the
    model serving them as soon as it is known (so an interrupted answer still names it)."""

    token: str
    serving_model: str


@dataclass
class ChatState:
    """One conversation's state, checkpointed per conversation_id (`thread_id`)."""

    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)
    # The caller's options for this turn; an ephemeral channel, gone after begin_turn's step.
    turn: Annotated[TurnOptions | None, EphemeralValue] = None

    # Per-turn fields (reset by begin_turn) ----------------------------------------------------
    # The router's decision; set from `turn.route` to bypass the router (replays, tests).
    route: RouteDecision | None = None
    # The text searched: the message, or the message with its context for a short follow-up.
    query: str = ""
    # Candidates per route, retrieved while the router decides.
    candidates: dict[Route, list[Passage]] = field(default_factory=dict)
    passages: list[Passage] = field(default_factory=list)
    rerank_info: RerankInfo | None = None
    answer_meta: AnswerMeta | None = None
    # The id the answer carries, in the checkpoint and in the messages table.
    reply_id: str = ""

    def __post_init__(self) -> None:
        # A host that speaks JSON hands typed fields over as plain dicts (LangGraph Studio
        # editing a checkpoint's state, a `turn` sent to `langgraph dev`): validate them back
        # into their models, so the nodes and edges always read the types declared here.
        for name, adapter in _TYPED_FIELDS.items():
            setattr(self, name, adapter.validate_python(getattr(self, name)))


# `messages` is left to its reducer, which already turns dicts into messages.
_TYPED_FIELDS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(hint)
    for name, hint in get_type_hints(ChatState).items()
    if name != "messages"
}

CONVERSATION_FIELDS = frozenset({"messages"})
INPUT_FIELDS = frozenset({"turn"})
PER_TURN_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(ChatState)
    if f.name not in CONVERSATION_FIELDS | INPUT_FIELDS
)


def turn_reset(options: TurnOptions | None) -> dict[str, Any]:
    """Every per-turn field at its default, then the caller's options for this turn."""
    fresh = ChatState()
    update = {name: getattr(fresh, name) for name in PER_TURN_FIELDS}
    options = options or TurnOptions()
    update["route"] = options.route
    update["reply_id"] = options.reply_id or str(uuid4())
    return update


def turn_input(
    message: str, *, message_id: str, reply_id: str, route: RouteDecision | None = None
) -> dict[str, Any]:
    """The graph input of a new turn: the user's message and this turn's options."""
    return {
        "messages": [HumanMessage(content=message, id=message_id)],
        "turn": TurnOptions(reply_id=reply_id, route=route),
    }


# What the checkpointer may deserialize from this state (msgpack allow-list).
STATE_MODELS: tuple[type[BaseModel], ...] = (
    RouteDecision,
    Passage,
    Usage,
    RerankInfo,
    Handoff,
    AnswerMeta,
    TurnOptions,
)
