"""The migration guide's KPIs for v2 (step 6) and how a window of traffic measures up to them.

"Temps réponse: <5s, Taux erreur: <1%, Distribution agents: ~50% Audrey, ~50% Carole,
<5% escalate." The thresholds live here and nowhere else: the analytics route and the inspector
read them from the `Kpi` list.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

RESPONSE_SECONDS = 5.0
ERROR_RATE = 0.01
ESCALATION_RATE = 0.05
SPECIALIST_SHARE = 0.5
# "~50 %": a specialist's share of routed turns is on target within 10 points of 50 %.
SHARE_TOLERANCE = 0.10


class KpiCounts(BaseModel):
    """What the KPIs are computed from, over one window (the last 24 hours)."""

    turns: int = 0
    errors: int = 0
    audrey: int = 0
    carole: int = 0
    escalate: int = 0
    answers: int = 0
    p95_ms: float | None = None

    @property
    def routed(self) -> int:
        return self.audrey + self.carole + self.escalate


class Kpi(BaseModel):
    """One KPI: its value, the target it is held to, and whether it meets it (None: no data)."""

    key: str
    label: str
    value: float | None
    unit: Literal["s", "ratio"]
    comparison: Literal["<", "≈"]
    threshold: float
    tolerance: float | None = None
    ok: bool | None
    sample_size: int


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _below(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value < threshold


def _near(value: float | None, target: float, tolerance: float) -> bool | None:
    return None if value is None else abs(value - target) <= tolerance


def evaluate(counts: KpiCounts) -> list[Kpi]:
    """The guide's KPIs over `counts`; response time is judged on the 95th percentile."""
    seconds = None if counts.p95_ms is None else counts.p95_ms / 1000
    error_rate = _ratio(counts.errors, counts.turns)
    shares = {
        name: _ratio(n, counts.routed)
        for name, n in (("audrey", counts.audrey), ("carole", counts.carole))
    }
    escalation = _ratio(counts.escalate, counts.routed)
    return [
        Kpi(
            key="response_time_p95",
            label="Temps de réponse (p95)",
            value=seconds,
            unit="s",
            comparison="<",
            threshold=RESPONSE_SECONDS,
            ok=_below(seconds, RESPONSE_SECONDS),
            sample_size=counts.answers,
        ),
        Kpi(
            key="error_rate",
            label="Taux d'erreur",
            value=error_rate,
            unit="ratio",
            comparison="<",
            threshold=ERROR_RATE,
            ok=_below(error_rate, ERROR_RATE),
            sample_size=counts.turns,
        ),
        *(
            Kpi(
                key=f"{name}_share",
                label=f"Part de {name.capitalize()}",
                value=share,
                unit="ratio",
                comparison="≈",
                threshold=SPECIALIST_SHARE,
                tolerance=SHARE_TOLERANCE,
                ok=_near(share, SPECIALIST_SHARE, SHARE_TOLERANCE),
                sample_size=counts.routed,
            )
            for name, share in shares.items()
        ),
        Kpi(
            key="escalation_rate",
            label="Taux d'escalade",
            value=escalation,
            unit="ratio",
            comparison="<",
            threshold=ESCALATION_RATE,
            ok=_below(escalation, ESCALATION_RATE),
            sample_size=counts.routed,
        ),
    ]
