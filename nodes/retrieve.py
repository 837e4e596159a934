"""retrieve: search the knowledge base while the router is still deciding."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from core.domain import AgentOwner, Route
from graph.context import Context
from graph.conversation import search_text
from graph.state import ChatState

# Which owners each route may read. The route is not known yet, so every set is searched and
# `rerank` keeps the chosen one: the critical path is max(route, embed + search), not the sum.
SEARCH_SCOPES: dict[Route, tuple[AgentOwner, ...]] = {
    "audrey": ("audrey", "shared"),
    "carole": ("carole", "shared"),
    "escalate": ("shared",),
}


async def retrieve(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Embed the query once and search every route's scope in one call (one statement on
    Postgres: one round trip under load instead of three)."""
    providers = runtime.context.require_providers()
    query = search_text(state.messages, runtime.context.follow_up_max_words)
    embedding = await providers.embeddings.query(query)
    candidates = await providers.retriever.search(
        embedding, query, SEARCH_SCOPES, runtime.context.retrieve_k
    )
    return {"query": query, "candidates": candidates}
