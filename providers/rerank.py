"""Rerankers: reorder retrieved passages for the chosen route, keep the best few."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from core.domain import Passage
from core.settings import Settings
from core.text import split_sentences
from providers.embeddings import EmbeddingCache, cosine


class Reranker(Protocol):
    """Scores passages against a query and returns the top `top_n`, best first."""

    name: str

    async def rerank(
        self, query: str, passages: Sequence[Passage], top_n: int
    ) -> list[Passage]: ...


class SentenceReranker:
    """Offline reranker: the hybrid search's order fused with each passage's best sentence.

    Chunk embeddings blur a section's several points together; scoring each sentence against
    the question (late interaction, e5 on both sides) finds the passage that actually answers.
    Ranking by that alone throws away the full-text half of the hybrid search, which the
    retrieval eval showed costs more than it gains, so the two rankings are fused by
    reciprocal rank (k = 60, the usual constant, not tuned). The sentence embeddings are cached
    and reused by the extractive generator.
    """

    name = "embedded/sentence-rrf"

    def __init__(self, embeddings: EmbeddingCache, rrf_k: int = 60):
        self._embeddings = embeddings
        self._rrf_k = rrf_k

    async def rerank(self, query: str, passages: Sequence[Passage], top_n: int) -> list[Passage]:
        if not passages:
            return []
        query_vector = await self._embeddings.query(query)
        sentences = [split_sentences(p.content)[:15] or [p.content] for p in passages]
        flat = [s for group in sentences for s in group]
        sims = cosine(await self._embeddings.texts(flat), query_vector)
        best: list[float] = []
        start = 0
        for group in sentences:
            best.append(float(np.max(sims[start : start + len(group)])))
            start += len(group)
        indices = range(len(passages))
        by_search = sorted(indices, key=lambda i: -passages[i].score)
        by_sentence = sorted(indices, key=lambda i: -best[i])
        fused = [0.0] * len(passages)
        for ranking in (by_search, by_sentence):
            for rank, i in enumerate(ranking):
                fused[i] += 1.0 / (self._rrf_k + rank + 1)
        order = sorted(indices, key=lambda i: -fused[i])
        return [
            passages[i].model_copy(update={"rerank_score": round(fused[i], 6)})
            for i in order[:top_n]
        ]


class CohereReranker:
    """Cohere's multilingual reranker (`/v2/rerank`) through the SDK's async client.

    langchain-cohere's `CohereRerank` only has a synchronous `rerank`, which would need a worker
    thread per call: under load every turn queued behind the default executor. The SDK's
    `AsyncClientV2` keeps the call on the event loop. The rerank node keeps retrieval order if
    it fails or times out.
    """

    def __init__(self, model: str, settings: Settings):
        import cohere

        assert settings.cohere_api_key is not None
        self.name = f"cohere/{model}"
        self._model = model
        self._timeout = settings.rerank_timeout_seconds
        self._retries = settings.llm_max_retries
        self._client = cohere.AsyncClientV2(
            api_key=settings.cohere_api_key.get_secret_value(),
            base_url=settings.cohere_base_url,
            timeout=settings.rerank_timeout_seconds,
        )

    async def rerank(self, query: str, passages: Sequence[Passage], top_n: int) -> list[Passage]:
        if not passages:
            return []
        async with asyncio.timeout(self._timeout):
            response = await self._client.rerank(
                model=self._model,
                query=query,
                documents=[p.content for p in passages],
                top_n=top_n,
                request_options={"max_retries": self._retries},
            )
        return [
            passages[r.index].model_copy(update={"rerank_score": float(r.relevance_score)})
            for r in response.results
        ]


def make_reranker(name: str, embeddings: EmbeddingCache, settings: Settings) -> Reranker:
    """Build the reranker named `provider/model`."""
    provider, _, model = name.partition("/")
    match provider:
        case "embedded":
            return SentenceReranker(embeddings)
        case "cohere":
            return CohereReranker(model, settings)
        case _:
            raise ValueError(f"Unknown reranker provider {provider!r} in {name!r}")
