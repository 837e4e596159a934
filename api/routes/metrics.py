"""`GET /metrics`: the Prometheus text format, for a scraper on the same host.

At the root, not under /api, so the guide's nginx (`/api/v2/` -> `/api/`) does not publish it.
Counters and histograms come from `core/metrics.py`; what the database knows (open hand-offs)
is read at scrape time, so it is right whichever worker answers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from api.deps import ServicesDep
from core.metrics import MULTIPROCESS_DIR
from store import handoffs

log = logging.getLogger(__name__)

router = APIRouter(tags=["monitoring"])


class _DatabaseGauges(Collector):
    """Gauges read from the database for this scrape."""

    def __init__(self, open_handoffs: int | None):
        self._open_handoffs = open_handoffs

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "chatbot_database_up",
            "1 when the database answered this scrape, else 0.",
            value=0 if self._open_handoffs is None else 1,
        )
        if self._open_handoffs is not None:
            yield GaugeMetricFamily(
                "chatbot_handoffs_open",
                "Conversations waiting for a person (open hand-offs).",
                value=self._open_handoffs,
            )


def _process_registry() -> CollectorRegistry:
    """This process's metrics, or every worker's in prometheus-client's multiprocess mode."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(services: ServicesDep) -> Response:
    """Turns, latencies, provider errors and fallbacks, rate limiting, hand-offs."""
    try:
        open_handoffs: int | None = await handoffs.count_open(services.pool)
    except Exception:
        log.warning("metrics: database unreachable", exc_info=True)
        open_handoffs = None
    scrape = CollectorRegistry()
    scrape.register(_DatabaseGauges(open_handoffs))
    body = generate_latest(_process_registry()) + generate_latest(scrape)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
