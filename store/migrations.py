"""Apply `database/migrations/*.sql` in order, once each, safely from several processes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

from core.settings import ROOT
from store.postgres import Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = ROOT / "database" / "migrations"
# What undoes a migration, for measurements only: never applied at start.
DOWN_DIR = MIGRATIONS_DIR / "down"


def read_migrations() -> list[tuple[str, str]]:
    """(version, SQL) of every migration file, in order."""
    return [
        (path.stem, path.read_text(encoding="utf-8"))
        for path in sorted(MIGRATIONS_DIR.glob("*.sql"))
    ]


async def apply_migrations(url: str) -> list[str]:
    """Apply `database/migrations/*.sql` in order; returns the versions applied by this call.

    Each file is idempotent on its own; the ledger only saves work, and the advisory lock keeps
    two processes starting at once from racing.
    """
    applied: list[str] = []
    # File reads stay off the event loop (the server's, or `langgraph dev`'s).
    migrations = await asyncio.to_thread(read_migrations)
    async with await psycopg.AsyncConnection.connect(url, prepare_threshold=None) as conn:
        async with conn.transaction():
            # Under the lock: N processes starting at once would race on the ledger's creation.
            await conn.execute("select pg_advisory_xact_lock(hashtext('chatbot-migrations'))")
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version text primary key, applied_at timestamptz not null default now())"
            )
        for version, sql in migrations:
            async with conn.transaction():
                await conn.execute("select pg_advisory_xact_lock(hashtext('chatbot-migrations'))")
                cur = await conn.execute(
                    "select 1 from schema_migrations where version = %s", (version,)
                )
                if await cur.fetchone():
                    continue
                await conn.execute(sql.encode())
                await conn.execute(
                    "insert into schema_migrations (version) values (%s)", (version,)
                )
                applied.append(version)
                log.info("applied migration %s", version)
    return applied


@asynccontextmanager
async def undone(conn: Connection, version: str) -> AsyncIterator[None]:
    """The schema without migration `version` (its file in `down/`), inside a transaction that
    is rolled back on exit: to measure what a migration replaced, on the same data. The tables
    it alters stay locked until then, so use only `conn` meanwhile."""
    sql = await asyncio.to_thread((DOWN_DIR / f"{version}.sql").read_text, encoding="utf-8")
    async with conn.transaction(force_rollback=True):
        await conn.execute(sql.encode())
        yield
