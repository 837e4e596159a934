"""The /health database probe: one query per period, shared by concurrent callers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from store.health import DatabaseProbe
from store.postgres import Pool


class _Cursor:
    async def fetchall(self) -> list[dict[str, Any]]:
        return [{"agent_owner": "audrey", "n": 3}]


class _Connection:
    def __init__(self, pool: _CountingPool):
        self._pool = pool

    async def execute(self, query: str) -> _Cursor:
        self._pool.queries += 1
        await asyncio.sleep(0.05)
        if self._pool.down:
            raise OSError("connection refused")
        return _Cursor()


class _CountingPool:
    """Stands in for the pool: counts the queries, can be 'down'."""

    def __init__(self) -> None:
        self.queries = 0
        self.down = False

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[_Connection]:
        yield _Connection(self)


async def test_concurrent_checks_share_one_query_and_an_outage_shows_after_max_age() -> None:
    """Cold, or older than twice `max_age`: callers wait for one shared check."""
    pool = _CountingPool()
    probe = DatabaseProbe(cast(Pool, pool), max_age=0.2)
    results = await asyncio.gather(*(probe.check() for _ in range(50)))
    assert results == [{"audrey": 3}] * 50
    assert pool.queries == 1
    assert await probe.check() == {"audrey": 3}  # fresh: from memory
    assert pool.queries == 1
    pool.down = True
    await asyncio.sleep(0.45)
    assert await probe.check() is None
    assert pool.queries == 2
    pool.down = False
    await asyncio.sleep(0.45)
    assert await probe.check() == {"audrey": 3}


async def test_a_recent_result_answers_at_once_while_the_next_check_runs_behind() -> None:
    pool = _CountingPool()
    probe = DatabaseProbe(cast(Pool, pool), max_age=0.2)
    assert await probe.check() == {"audrey": 3}
    await asyncio.sleep(0.25)  # stale, but less than twice max_age
    pool.down = True
    started = asyncio.get_running_loop().time()
    assert await probe.check() == {"audrey": 3}  # answered from memory...
    assert asyncio.get_running_loop().time() - started < 0.04  # ...without the 50 ms query
    await asyncio.sleep(0.1)  # the refresh it started has ended: the outage shows
    assert pool.queries == 2
    assert await probe.check() is None
