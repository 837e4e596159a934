"""Retriever backends: the Postgres hybrid search, or an in-memory index for unit tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

import numpy as np

from core.domain import AgentOwner, Passage
from providers.embeddings import Vector, cosine
from store import documents
from store.documents import Scope, SearchTuning
from store.postgres import Pool


class Retriever(Protocol):
    """Finds, for each scope (a set of owners), the k passages closest to a query among that
    scope's documents."""

    async def search(
        self, embedding: Vector, text: str, scopes: Mapping[Scope, Sequence[AgentOwner]], k: int
    ) -> dict[Scope, list[Passage]]: ...


class PostgresRetriever:
    """pgvector + French full text in one SQL function (`match_documents_hybrid`)."""

    def __init__(self, pool: Pool, tuning: SearchTuning | None = None):
        self._pool = pool
        self._tuning = tuning

    async def search(
        self, embedding: Vector, text: str, scopes: Mapping[Scope, Sequence[AgentOwner]], k: int
    ) -> dict[Scope, list[Passage]]:
        return await documents.search_scopes(self._pool, embedding, text, scopes, k, self._tuning)


class InMemoryRetriever:
    """Cosine search over passages held in memory (no database, for unit tests)."""

    def __init__(self, passages: Sequence[tuple[Passage, Vector]]):
        self._passages = [p for p, _ in passages]
        self._matrix = (
            np.stack([v for _, v in passages]) if passages else np.zeros((0, 1), np.float32)
        )

    async def search(
        self, embedding: Vector, text: str, scopes: Mapping[Scope, Sequence[AgentOwner]], k: int
    ) -> dict[Scope, list[Passage]]:
        sims = cosine(self._matrix, embedding)
        order = np.argsort(-sims)
        ranked = [
            self._passages[i].model_copy(
                update={"similarity": float(sims[i]), "score": float(sims[i])}
            )
            for i in order
        ]
        return {
            name: [p for p in ranked if p.agent_owner in agents][:k]
            for name, agents in scopes.items()
        }


def make_retriever(
    kind: Literal["postgres", "memory"],
    *,
    pool: Pool | None = None,
    tuning: SearchTuning | None = None,
    passages: Sequence[tuple[Passage, Vector]] = (),
) -> Retriever:
    """Pick the retriever backend (`tuning`: the Postgres search's knobs, from settings)."""
    match kind:
        case "postgres":
            if pool is None:
                raise ValueError("the postgres retriever needs a connection pool")
            return PostgresRetriever(pool, tuning)
        case "memory":
            return InMemoryRetriever(passages)
