"""Checkpoint retention: what history and replay need, nothing older.

Each checkpoint's `messages` blob holds the whole conversation, so keeping every step of every
turn grows with the square of a conversation's length. A conversation keeps every checkpoint
of its last N turns (the history the next turn reads, and replay of recent turns); older
checkpoints, their pending writes and the blobs no kept checkpoint refers to are deleted. The
messages table keeps the whole conversation.
"""

from __future__ import annotations

from store.postgres import Pool

# The first checkpoint of the oldest turn to keep (turns are told apart by the run's message_id).
_CUTOFF = (
    "(select min(checkpoint_id) as first from checkpoints "
    " where thread_id = %(t)s and checkpoint_ns = '' and metadata ? 'message_id' "
    " group by metadata->>'message_id' order by first desc offset %(skip)s limit 1)"
)


async def prune(pool: Pool, thread_id: str, keep_turns: int) -> None:
    """Delete the checkpoints of `thread_id` older than its last `keep_turns` turns, their
    writes, and the blobs no kept checkpoint refers to: one transaction, one round trip."""
    params = {"t": thread_id, "skip": keep_turns - 1}
    async with pool.connection() as conn, conn.pipeline(), conn.transaction():
        await conn.execute(
            "delete from checkpoints where thread_id = %(t)s and checkpoint_ns = '' "
            f"and checkpoint_id < {_CUTOFF}".encode(),
            params,
        )
        await conn.execute(
            "delete from checkpoint_writes where thread_id = %(t)s and checkpoint_ns = '' "
            f"and checkpoint_id < {_CUTOFF}".encode(),
            params,
        )
        await conn.execute(
            "delete from checkpoint_blobs b where b.thread_id = %(t)s and b.checkpoint_ns = '' "
            "and not exists (select 1 from checkpoints c where c.thread_id = b.thread_id "
            "and c.checkpoint_ns = b.checkpoint_ns "
            "and c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
            params,
        )


async def thread_bytes(pool: Pool, thread_id: str) -> int:
    """Bytes the thread's checkpoints take (rows as stored), for the retention benchmark."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select coalesce((select sum(pg_column_size(c.*)) from checkpoints c "
            "  where c.thread_id = %s), 0) "
            "+ coalesce((select sum(pg_column_size(b.*)) from checkpoint_blobs b "
            "  where b.thread_id = %s), 0) "
            "+ coalesce((select sum(pg_column_size(w.*)) from checkpoint_writes w "
            "  where w.thread_id = %s), 0) as bytes",
            (thread_id, thread_id, thread_id),
        )
        row = await cur.fetchone()
    return int(row["bytes"]) if row else 0
