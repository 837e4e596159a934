"""escalate: tell the user a person will take over."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import ChatState
from nodes.generate import compose_answer


async def escalate(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Acknowledge, hand off to the team, and say how to reach them (from the shared documents)."""
    update = await compose_answer("escalate", state, runtime)
    update["answer_meta"]["handoff"] = {
        "reason": state.route.reason if state.route else "unknown",
    }
    return update
