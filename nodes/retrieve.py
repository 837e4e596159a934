"""retrieve: search the knowledge base while the router is still deciding."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from core.domain import AgentOwner, Passage, Route
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
    """Embed the query once and run one filtered hybrid search per route, concurrently."""
    providers = runtime.context.require_providers()
    query = search_text(state.messages, runtime.context.follow_up_max_words)
    embedding = await providers.embeddings.query(query)
    k = runtime.context.retrieve_k
    results: list[list[Passage]] = await asyncio.gather(
        *(
            providers.retriever.search(embedding, query, scope, k)
            for scope in SEARCH_SCOPES.values()
        )
    )
    return {"query": query, "candidates": dict(zip(SEARCH_SCOPES, results, strict=True))}
