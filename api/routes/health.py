"""Health and analytics: what an operator (or nginx's /api/v2/health) checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import ServicesDep
from api.schemas import HealthResponse
from store import analytics, documents

router = APIRouter(tags=["health"])
analytics_router = APIRouter(tags=["analytics"])


@router.get("/health", responses={503: {"model": HealthResponse}})
async def health(services: ServicesDep, response: Response) -> HealthResponse:
    """Database reachable? Which mode and providers? 503 when the database is down."""
    try:
        counts = await documents.count_by_agent(services.pool)
        database_ok = True
    except Exception:
        counts, database_ok = {}, False
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


@analytics_router.get("/analytics")
async def monitoring(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """The seed's three monitoring queries (last 24 hours), run verbatim."""
    return await analytics.monitoring(services.pool)
