"""The request rate limit, kept in Postgres so it is exact across workers and machines."""

from __future__ import annotations

from collections.abc import Sequence

from store.postgres import Pool


async def hit(pool: Pool, keys: Sequence[str], limit: int, window_seconds: float) -> float | None:
    """Count a request against every key (or none if one is full): None when allowed, else the
    seconds until it would be (the `rate_limit_hit` function in migration 004)."""
    async with pool.admit() as conn:
        cur = await conn.execute(
            "select rate_limit_hit(%s::text[], %s, %s) as wait",
            (sorted(set(keys)), limit, window_seconds),
        )
        row = await cur.fetchone()
    wait = row["wait"] if row else None
    return None if wait is None else float(wait)
