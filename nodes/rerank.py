"""rerank: keep the chosen route's candidates and reorder them."""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import ChatState

log = logging.getLogger(__name__)


async def rerank(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Rerank the route's candidates to top-n; on failure keep retrieval order, marked degraded."""
    assert state.route is not None, "rerank runs after route"
    candidates = state.candidates.get(state.route.route, [])
    top_n = runtime.context.rerank_top_n
    reranker = runtime.context.providers.reranker
    try:
        passages = await reranker.rerank(state.query, candidates, top_n)
        info: dict[str, Any] = {"reranker": reranker.name, "degraded": False}
    except Exception as exc:  # a reranker outage must not cost the user an answer
        log.warning("rerank failed, keeping retrieval order: %r", exc)
        passages = candidates[:top_n]
        info = {"reranker": reranker.name, "degraded": True, "error": repr(exc)}
    return {"passages": passages, "rerank_info": info}


def after_rerank(state: ChatState) -> str:
    """Hand the turn to the persona the router chose."""
    assert state.route is not None
    match state.route.route:
        case "audrey":
            return "audrey"
        case "carole":
            return "carole"
        case "escalate":
            return "escalate"
