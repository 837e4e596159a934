"""Health and analytics: what an operator (or nginx's /api/v2/health) checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.schemas import HealthResponse
from core.kpis import Kpi, evaluate
from store import analytics
from store.analytics import DailyStats

router = APIRouter(tags=["health"])
analytics_router = APIRouter(tags=["analytics"])


@router.get("/health", responses={503: {"model": HealthResponse}})
async def health(services: ServicesDep, response: Response) -> HealthResponse:
    """Database reachable? Which mode and providers? 503 when the database is down."""
    checked = await services.probe.check()  # at most one query a second, shared
    counts, database_ok = checked or {}, checked is not None
    body = HealthResponse(
        status="ok" if database_ok else "degraded",
        database="ok" if database_ok else "unreachable",
        mode=services.settings.mode,
        llm=services.providers.generator.uses_llm,
        providers=services.providers.describe(),
        documents=counts,
    )
    if not database_ok:
        response.status_code = 503
    return body


class AnalyticsResponse(BaseModel):
    """The guide's step-6 queries as written, its KPIs over the last 24 hours, and per-day
    series per agent (the inspector's charts)."""

    volume_by_version: list[dict[str, Any]]
    performance_v2: list[dict[str, Any]]
    agent_distribution: list[dict[str, Any]]
    kpis: list[Kpi] = Field(description="Last 24 hours against the guide's targets")
    daily: list[DailyStats] = Field(
        description="Per UTC day: the totals (agent null), then each agent"
    )


@analytics_router.get("/analytics")
async def monitoring(
    services: ServicesDep, days: Annotated[int, Query(ge=1, le=90)] = 14
) -> AnalyticsResponse:
    """The seed's three monitoring queries (last 24 hours, run verbatim), the KPIs, and the
    last `days` days per agent: p50/p95 latency, error and escalation rates, feedback, cost."""
    seed = await analytics.monitoring(services.pool)
    return AnalyticsResponse(
        volume_by_version=seed["volume_by_version"],
        performance_v2=seed["performance_v2"],
        agent_distribution=seed["agent_distribution"],
        kpis=evaluate(await analytics.kpi_counts(services.pool)),
        daily=await analytics.daily_stats(services.pool, days),
    )
