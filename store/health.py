"""The database check behind `/health`: cached briefly and shared by concurrent callers.

A load balancer or a widget polls `/health` often; under load, a query per call would queue
behind the turns for a pooled connection and report the queue, not the service. The check runs
at most once per `max_age` seconds (concurrent callers share it). A result up to twice that
old is answered at once while the next check runs behind it, so a caller polling under load
never waits for the pool (`/health` p95 was the refresh: bench/load.py, embedded sweep); an
older one is not trusted and callers wait for the check. An outage shows within 2 × `max_age`
plus the pool's admission patience.
"""

from __future__ import annotations

import asyncio
import time

from store import documents
from store.postgres import Pool


class DatabaseProbe:
    """Chunks per owner, or None when the database cannot be reached."""

    def __init__(self, pool: Pool, max_age: float = 1.0):
        self._pool = pool
        self._max_age = max_age
        self._checked_at = float("-inf")
        self._result: dict[str, int] | None = None
        self._running: asyncio.Task[dict[str, int] | None] | None = None

    async def check(self) -> dict[str, int] | None:
        age = time.monotonic() - self._checked_at
        if age < self._max_age:
            return self._result
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check())
        if age < 2 * self._max_age:
            return self._result
        return await asyncio.shield(self._running)

    async def _check(self) -> dict[str, int] | None:
        try:
            result: dict[str, int] | None = await documents.count_by_agent(self._pool)
        except Exception:
            result = None
        self._result, self._checked_at = result, time.monotonic()
        return result
