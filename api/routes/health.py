"""Health and analytics: what an operator (or nginx's /api/v2/health) checks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import ServicesDep
from api.schemas import HealthResponse
from graph.store import documents
from graph.store.postgres import read_query

router = APIRouter(tags=["health"])
analytics_router = APIRouter(tags=["analytics"])

MONITORING_QUERIES = (
    ("volume_by_version", "monitoring_1_volume_by_version"),
    ("performance_v2", "monitoring_2_performance_v2"),
    ("agent_distribution", "monitoring_3_agent_distribution"),
)


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
        llm=services.providers.composer.uses_llm,
        providers=services.providers.describe(),
        documents=counts,
    )
    if not database_ok:
        response.status_code = 503
    return body


@analytics_router.get("/analytics")
async def analytics(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    """The seed's three monitoring queries (last 24 hours), run verbatim."""
    result: dict[str, list[dict[str, Any]]] = {}
    async with services.pool.connection() as conn:
        for key, name in MONITORING_QUERIES:
            cur = await conn.execute(read_query(name).encode())
            result[key] = [
                {k: (float(v) if hasattr(v, "as_tuple") else v) for k, v in row.items()}
                for row in await cur.fetchall()
            ]
    return result
