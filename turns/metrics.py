"""A turn's Prometheus metrics, read from the events it emits (the SSE contract), not from the
runner's insides: who answered, how it ended, time to first token, total time."""

from __future__ import annotations

import time

from core.metrics import FIRST_TOKEN_SECONDS, TURN_SECONDS, TURNS
from turns.events import EndEvent, ErrorEvent, RouteEvent, TurnEvent
from turns.handoff import HANDOFF_ROUTER


class TurnMetrics:
    """Watches one turn's events and records the turn once, when it ends."""

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._agent = "none"
        self._held = False

    def see(self, event: TurnEvent) -> None:
        match event:
            case RouteEvent():
                self._agent = event.agent
                self._held = event.router == HANDOFF_ROUTER
            case EndEvent():
                status = "held" if self._held else "complete"
                self._record(event.agent, status, event.latency_ms / 1000)
                if event.first_token_ms is not None and not self._held:
                    FIRST_TOKEN_SECONDS.labels(agent=event.agent).observe(
                        event.first_token_ms / 1000
                    )
            case ErrorEvent():
                status = "interrupted" if event.code == "generation_interrupted" else "failed"
                self._record(self._agent, status, time.perf_counter() - self._started)
            case _:
                pass

    def _record(self, agent: str, status: str, seconds: float) -> None:
        TURNS.labels(agent=agent, status=status).inc()
        TURN_SECONDS.labels(agent=agent, status=status).observe(seconds)
