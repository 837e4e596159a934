"""Run routers over routing datasets."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evals.datasets import RoutingCase
from evals.metrics import routing_report
from providers.router import Router


@dataclass(frozen=True)
class Prediction:
    case: RoutingCase
    predicted: str
    reason: str
    latency_ms: float


async def predict(router: Router, cases: Sequence[RoutingCase]) -> list[Prediction]:
    """Route every case in order, timing each decision."""
    predictions = []
    for case in cases:
        started = time.perf_counter()
        decision = await router.route(case.query)
        predictions.append(
            Prediction(
                case=case,
                predicted=decision.route,
                reason=decision.reason,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        )
    return predictions


def report(router: str, predictions: Sequence[Prediction], datasets: list[str]) -> dict[str, Any]:
    """report.json's content for one router, with its mistakes listed."""
    result = routing_report(
        router,
        [p.case.expected for p in predictions],
        [p.predicted for p in predictions],
        [p.latency_ms for p in predictions],
        {"datasets": datasets},
    )
    result["errors"] = [
        {
            "id": p.case.id,
            "message": p.case.message,
            "expected": p.case.expected,
            "predicted": p.predicted,
            "reason": p.reason,
            "multi_turn": bool(p.case.history),
        }
        for p in predictions
        if p.predicted != p.case.expected
    ]
    return result
