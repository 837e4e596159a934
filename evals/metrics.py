"""Pure evaluator functions: no I/O, no models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LABELS = ("audrey", "carole", "escalate")


def confusion(expected: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, int]]:
    """confusion[expected][predicted] = count."""
    table = {e: dict.fromkeys(LABELS, 0) for e in LABELS}
    for e, p in zip(expected, predicted, strict=True):
        table[e][p] += 1
    return table


def per_class(expected: Sequence[str], predicted: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label."""
    result: dict[str, dict[str, float]] = {}
    for label in LABELS:
        tp = sum(1 for e, p in zip(expected, predicted, strict=True) if e == p == label)
        fp = sum(1 for e, p in zip(expected, predicted, strict=True) if p == label != e)
        fn = sum(1 for e, p in zip(expected, predicted, strict=True) if e == label != p)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
    return result


def accuracy(expected: Sequence[str], predicted: Sequence[str]) -> float:
    if not expected:
        return 0.0
    return round(sum(e == p for e, p in zip(expected, predicted, strict=True)) / len(expected), 4)


def macro_f1(classes: dict[str, dict[str, float]]) -> float:
    present = [c["f1"] for c in classes.values() if c["support"]]
    return round(sum(present) / len(present), 4) if present else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def routing_report(
    router: str,
    expected: Sequence[str],
    predicted: Sequence[str],
    latencies_ms: Sequence[float],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything `report.json` holds for one router on one dataset."""
    classes = per_class(expected, predicted)
    return {
        "router": router,
        "n": len(expected),
        "accuracy": accuracy(expected, predicted),
        "macro_f1": macro_f1(classes),
        "escalate_recall": classes["escalate"]["recall"],
        "escalate_precision": classes["escalate"]["precision"],
        "per_class": classes,
        "confusion": confusion(expected, predicted),
        "latency_ms": {
            "p50": round(percentile(latencies_ms, 50), 2),
            "p95": round(percentile(latencies_ms, 95), 2),
        },
        **(extra or {}),
    }


def recall_at_k(expected: set[str], ranked: Sequence[str], k: int) -> float:
    """Share of the expected documents found in the first k results."""
    if not expected:
        return 0.0
    return len(expected & set(ranked[:k])) / len(expected)


def reciprocal_rank(expected: set[str], ranked: Sequence[str]) -> float:
    """1 / rank of the first expected document (0 when none is found)."""
    for position, item in enumerate(ranked, start=1):
        if item in expected:
            return 1.0 / position
    return 0.0
