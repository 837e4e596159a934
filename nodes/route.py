"""route: decide which persona answers this turn."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.conversation import latest_user_message, previous_route
from graph.state import ChatState


async def route(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Ask the router, unless the input already carries a decision (replays, tests)."""
    if state.route is not None:
        return {"route": state.route}
    decision = await runtime.context.providers.router.route(
        latest_user_message(state.messages),
        previous_route(state.messages),
        state.messages[:-1],
    )
    return {"route": decision}
