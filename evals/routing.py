"""Run routers over routing datasets and summarise each router set by set."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evals.datasets import RoutingCase
from evals.metrics import percentile, routing_report
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
    """One router on one dataset: metrics and the mistakes."""
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


def summary(router: str, by_set: Mapping[str, Sequence[Prediction]]) -> dict[str, Any]:
    """One router on several datasets: each set's report, the mean over sets, the latency of
    every decision."""
    sets = {name: report(router, predictions, [name]) for name, predictions in by_set.items()}
    pooled = [p for predictions in by_set.values() for p in predictions]
    latencies = [p.latency_ms for p in pooled]
    return {
        "router": router,
        "sets": sets,
        "mean": {
            key: round(sum(s[key] for s in sets.values()) / len(sets), 4)
            for key in ("accuracy", "escalate_recall", "escalate_precision", "macro_f1")
        },
        "pooled": routing_report(
            router,
            [p.case.expected for p in pooled],
            [p.predicted for p in pooled],
            latencies,
        ),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 2),
            "p95": round(percentile(latencies, 95), 2),
        },
    }
