"""Run-time knobs of one run, passed to the graph as `context`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Annotated

from pydantic import ConfigDict, Field, SkipValidation
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from graph.conversation import FOLLOW_UP_MAX_WORDS
from graph.state import StreamChunk
from providers import Providers


# A pydantic dataclass because LangGraph builds it from a run's JSON context (`langgraph dev`,
# Studio): a wrong value fails before the first node, naming the field, and the JSON schema
# (Studio's form for the run's context) carries the bounds and descriptions. `providers` holds
# clients, so it is neither validated nor in that schema; `langgraph dev` drops context keys
# its schema lacks, so a caller cannot send it, and the host that compiled the graph supplies
# its own (`graph.builder.build_graph(providers=...)`).
@dataclass(
    frozen=True,
    kw_only=True,
    config=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
)
class Context:
    """Knobs of one run; every one has a default, so send none, some or all of them."""

    retrieve_k: Annotated[
        int, Field(ge=1, le=50, description="Passages retrieved per route, before reranking.")
    ] = 8
    rerank_top_n: Annotated[
        int, Field(ge=1, le=20, description="Passages kept after reranking, for the answer.")
    ] = 4
    follow_up_max_words: Annotated[
        int,
        Field(
            ge=0,
            le=100,
            description="A message this short (in words) is a follow-up of the previous turn: "
            "the router keeps the previous specialist, the retriever adds the previous question.",
        ),
    ] = FOLLOW_UP_MAX_WORDS
    providers: Annotated[Providers | None, SkipValidation, SkipJsonSchema()] = field(
        default=None, repr=False, compare=False
    )
    # Where the generator hands its chunks when the host reads them itself (the server's turns,
    # `turns/stream.py`); None: LangGraph's `custom` stream (`langgraph dev`, replays).
    token_sink: Annotated[
        Callable[[StreamChunk], None] | None, SkipValidation, SkipJsonSchema()
    ] = field(default=None, repr=False, compare=False)

    def require_providers(self) -> Providers:
        """The providers of this run; the graph fills them in, so only a bare graph lacks them."""
        if self.providers is None:
            raise RuntimeError(
                "no providers: compile the graph with build_graph(providers=...) or pass "
                "Context(providers=...)"
            )
        return self.providers
