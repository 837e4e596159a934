"""Retrieval quality over knowledge/: recall@k and MRR, with and without the reranker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.domain import AgentOwner, Passage
from evals.datasets import RetrievalCase
from evals.metrics import recall_at_k, reciprocal_rank
from nodes.retrieve import SEARCH_SCOPES
from providers.embeddings import EmbeddingCache
from providers.rerank import Reranker
from store import documents
from store.postgres import Pool

KS = (1, 3, 5)


def ranked_documents(passages: Sequence[Passage]) -> list[str]:
    """Chunks to documents, best first, each document once (`audrey/file.md`)."""
    ranked: list[str] = []
    for passage in passages:
        document = passage.source.partition(":")[2] or passage.source
        if document not in ranked:
            ranked.append(document)
    return ranked


def scope(agent: str) -> tuple[AgentOwner, ...]:
    """What the product searches for a question owned by `agent`."""
    if agent == "audrey":
        return SEARCH_SCOPES["audrey"]
    if agent == "carole":
        return SEARCH_SCOPES["carole"]
    return SEARCH_SCOPES["escalate"]


async def evaluate(
    pool: Pool,
    embeddings: EmbeddingCache,
    reranker: Reranker,
    cases: Sequence[RetrievalCase],
    candidates: int = 8,
) -> dict[str, Any]:
    """Metrics of the hybrid search alone and of search + rerank, on the same candidates."""
    rows: dict[str, list[dict[str, float]]] = {"retrieval": [], "reranked": []}
    misses: list[dict[str, Any]] = []
    for case in cases:
        query = await embeddings.query(case.question)
        hits = await documents.search_hybrid(
            pool, query, case.question, scope(case.agent), candidates
        )
        reranked = await reranker.rerank(case.question, hits, len(hits))
        expected = set(case.expected_sources)
        for name, passages in (("retrieval", hits), ("reranked", reranked)):
            ranked = ranked_documents(passages)
            row = {f"recall@{k}": recall_at_k(expected, ranked, k) for k in KS}
            row["mrr"] = reciprocal_rank(expected, ranked)
            rows[name].append(row)
        if not set(ranked_documents(reranked)[:3]) & expected:
            misses.append(
                {
                    "question": case.question,
                    "expected": sorted(expected),
                    "got": ranked_documents(reranked)[:3],
                }
            )
    summary: dict[str, Any] = {"n": len(cases), "candidates": candidates, "reranker": reranker.name}
    for name, values in rows.items():
        summary[name] = {
            key: round(sum(v[key] for v in values) / len(values), 4) for key in values[0]
        }
    summary["misses_top3"] = misses
    return summary
