"""Schemathesis against the running server's own /openapi.json: every route, generated inputs
(bounded and derandomised so the run is repeatable), no 5xx, and every error in the documented
`{"error": {"code", "message"}}` shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devtools.processes import ServerProcess, clean_environment
from tests.integration.conftest import _free_port, fresh_database

ADMIN_TOKEN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def fuzz_url(data_dir: Path) -> Iterator[str]:
    """A real server process (embedded providers, admin routes on, no rate limit)."""
    database = asyncio.run(fresh_database(data_dir, "fuzz"))
    server = ServerProcess(
        clean_environment(
            DATABASE_URL=database,
            PORT=str(_free_port()),
            LOG_LEVEL="warning",
            ADMIN_TOKEN=ADMIN_TOKEN,
            RATE_LIMIT_PER_MINUTE="0",
            CPU_THREADS="1",
        )
    )
    try:
        asyncio.run(server.ready())
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_survives_generated_input(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["error"]["code"], str), body
        assert isinstance(body["error"]["message"], str), body
        assert body["error"]["message"], body
