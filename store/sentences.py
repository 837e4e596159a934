"""`sentence_embeddings`: per-sentence vectors computed at ingest, loaded by the server."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from store.postgres import Pool


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def save(
    pool: Pool, model: str, rows: Sequence[tuple[str, np.ndarray[Any, np.dtype[np.float32]]]]
) -> None:
    """Store sentence vectors (existing ones are kept)."""
    if not rows:
        return
    async with pool.connection() as conn, conn.cursor() as cur:
        await cur.executemany(
            "insert into sentence_embeddings (text_hash, embedding_model, text, embedding) "
            "values (%s, %s, %s, %s) on conflict do nothing",
            [(text_hash(text), model, text, vector) for text, vector in rows],
        )


async def load(
    pool: Pool, model: str, limit: int
) -> list[tuple[str, np.ndarray[Any, np.dtype[np.float32]]]]:
    """The most recent `limit` sentence vectors of `model`."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select text, embedding from sentence_embeddings where embedding_model = %s "
            "order by created_at desc limit %s",
            (model, limit),
        )
        rows = await cur.fetchall()
    return [(row["text"], as_array(row["embedding"])) for row in rows]


def as_array(value: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    """pgvector's loader gives a `Vector` (or an ndarray, depending on version): make it numpy."""
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    return np.asarray(value, dtype=np.float32)
