"""Run-time knobs and the providers a run uses, passed to the graph as `context`."""

from __future__ import annotations

from dataclasses import dataclass

from graph.providers import Providers


@dataclass(frozen=True)
class Context:
    """What a single run may tune without rebuilding the graph.

    Providers are built once at start-up (see `graph.providers.make_providers`) and shared by
    every run; the numbers are per-run so an eval or a replay can change them.
    """

    providers: Providers
    retrieve_k: int = 8
    rerank_top_n: int = 4
    # A message this short (in words) is read as a follow-up of the previous turn.
    follow_up_max_words: int = 8
