"""Schemathesis against the running server's own /openapi.json: every route, generated inputs
(bounded and derandomised so the run is repeatable), no 5xx, and every error in the documented
`{"error": {"code", "message"}}` shape."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

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


def test_every_route_survives_generated_input(fuzz_url: str) -> None:
    """Valid and invalid inputs (schemathesis' positive and negative modes) for every
    operation in the schema. schemathesis' own pytest plugin does not load under pytest 9,
    so its strategies drive Hypothesis directly."""
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of our schema is valid
        operations.append(result.ok())
    assert len(operations) >= 8
    failures: list[str] = []
    calls = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=8,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(
                    base_url=fuzz_url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=60,
                )
                label = f"{case.method} {case.formatted_path} -> {response.status_code}"
                if response.status_code >= 500:
                    failures.append(f"{label}: {response.text[:300]}")
                elif response.status_code >= 400:
                    try:
                        error = response.json()["error"]
                        assert isinstance(error["code"], str)
                        assert isinstance(error["message"], str)
                        assert error["message"]
                    except (ValueError, KeyError, TypeError, AssertionError):
                        failures.append(
                            f"{label}: not the documented error shape: {response.text[:300]}"
                        )

            try:
                check()
            except Unsatisfiable:
                # No invalid input exists for this operation (no parameters, no body).
                assert mode == GenerationMode.NEGATIVE, operation.label
    assert calls >= 8 * len(operations)
    assert not failures, "\n".join(failures[:20])
