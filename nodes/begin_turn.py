"""begin_turn: start every turn from a clean slate."""

from __future__ import annotations

from typing import Any

from graph.state import ChatState, turn_reset


async def begin_turn(state: ChatState) -> dict[str, Any]:
    """Reset every per-turn field to its default and apply the caller's options for this turn.

    Done inside the graph, not by the caller's input, so a host that sends only a message
    (LangGraph Studio, a replay) gets the same clean turn as the server.
    """
    return turn_reset(state.turn)
