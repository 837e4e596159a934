"""escalate: tell the user a person will take over."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from graph.context import Context
from graph.state import ChatState, Handoff
from nodes.generate import generate


async def escalate(state: ChatState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Acknowledge, hand off to the team, and say how to reach them (from the shared documents)."""
    handoff = Handoff(reason=state.route.reason if state.route else "unknown")
    return await generate("escalate", state, runtime, handoff=handoff)
