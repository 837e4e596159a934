"""What every benchmark reports the same way: percentiles, the machine, where results go."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from core.settings import ROOT

RESULTS = ROOT / "bench" / "results"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile `q` (0-100) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95, max and count of a list of durations (ms), rounded for reading."""
    return {
        "p50": rounded(statistics.median(values) if values else None),
        "p95": rounded(percentile(values, 95)),
        "max": rounded(max(values) if values else None),
        "n": len(values),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: how busy the machine was while measuring."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cores": psutil.cpu_count(), "model": cpu_model(), "load_average": load_average()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
