"""Run-time knobs of one run, passed to the graph as `context`."""

from __future__ import annotations

from dataclasses import dataclass, field

from graph.conversation import FOLLOW_UP_MAX_WORDS
from providers import Providers


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a single run may tune without rebuilding the graph; every field has a default, so
    a caller (an eval, a replay, LangGraph Studio) sends none, some or all of them.

    `providers` is not a knob: the host that compiled the graph supplies its own
    (`graph.builder.build_graph(providers=...)`) whenever a run's context leaves it out.
    """

    retrieve_k: int = 8
    rerank_top_n: int = 4
    # A message this short (in words) is read as a follow-up of the previous turn, by the
    # router (stay with the previous specialist) and the retriever (search with its context).
    follow_up_max_words: int = FOLLOW_UP_MAX_WORDS
    providers: Providers | None = field(default=None, repr=False, compare=False)

    def require_providers(self) -> Providers:
        """The providers of this run; the graph fills them in, so only a bare graph lacks them."""
        if self.providers is None:
            raise RuntimeError(
                "no providers: compile the graph with build_graph(providers=...) or pass "
                "Context(providers=...)"
            )
        return self.providers
