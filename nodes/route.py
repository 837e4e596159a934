"""route: decide which persona answers this turn."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.conversation import route_query
from graph.state import ChatState


async def route(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the router, unless this turn's options already chose (replays, tests)."""
    if state.route is not None:
        return {"route": state.route}
    router = runtime.context.require_providers().router
    query = route_query(state.messages, runtime.context.follow_up_max_words)
    return {"route": await router.route(query)}
