"""rerank: keep the chosen route's candidates and reorder them."""

from __future__ import annotations

import logging
from typing import Any

from langgraph.runtime import Runtime

from core.domain import Route
from core.metrics import PROVIDER_ERRORS, PROVIDER_FALLBACKS
from graph.context import Context
from graph.state import ChatState, RerankInfo

log = logging.getLogger(__name__)


async def rerank(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Rerank the route's candidates to top-n; on failure keep retrieval order, marked degraded."""
    assert state.route is not None, "rerank runs after route"
    candidates = state.candidates.get(state.route.route, [])
    top_n = runtime.context.rerank_top_n
    reranker = runtime.context.require_providers().reranker
    try:
        passages = await reranker.rerank(state.query, candidates, top_n)
        info = RerankInfo(reranker=reranker.name)
    except Exception as exc:  # a reranker outage must not cost the user an answer
        log.warning("rerank failed, keeping retrieval order: %r", exc)
        PROVIDER_ERRORS.labels(role="rerank", provider=reranker.name).inc()
        PROVIDER_FALLBACKS.labels(role="rerank").inc()
        passages = candidates[:top_n]
        info = RerankInfo(reranker=reranker.name, degraded=True, error=repr(exc)[:500])
    return {"passages": passages, "rerank_info": info}


async def after_rerank(state: ChatState) -> Route:
    """Hand the turn to the persona the router chose (each route is a node of that name).

    async, though it awaits nothing: LangGraph runs a plain function in a worker thread, a
    thread hop on every turn for a field read."""
    assert state.route is not None
    return state.route.route
