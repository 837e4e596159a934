"""Providers behind small protocols, built once at start-up from settings.

The embedded default and the production services are two implementations of each protocol;
`make_providers` picks them from `provider/model` strings.
"""

from __future__ import annotations

from dataclasses import dataclass

from graph.providers.composer import AnswerComposer, make_composer
from graph.providers.embeddings import EmbeddingCache, make_embeddings
from graph.providers.rerank import Reranker, make_reranker
from graph.providers.retriever import Retriever, make_retriever
from graph.providers.routing import Router, make_router
from graph.settings import Settings
from graph.store import sentences
from graph.store.postgres import Pool


@dataclass(frozen=True)
class Providers:
    """The clients a run uses, shared by every run of the process."""

    embeddings: EmbeddingCache
    router: Router
    retriever: Retriever
    reranker: Reranker
    composer: AnswerComposer

    def describe(self) -> dict[str, str]:
        """Provider names for /health and answer metadata."""
        return {
            "embeddings": self.embeddings.name,
            "router": self.router.name,
            "retriever": type(self.retriever).__name__,
            "reranker": self.reranker.name,
            "chat": self.composer.name,
        }


async def make_providers(settings: Settings, pool: Pool) -> Providers:
    """Build every provider once; the router's examples are embedded here, not per request."""
    embeddings = make_embeddings(settings.embedding_model)
    embeddings.preload(await sentences.load(pool, embeddings.name, limit=20_000))
    router = make_router(settings.router_model, embeddings)
    await router.warm()
    return Providers(
        embeddings=embeddings,
        router=router,
        retriever=make_retriever("postgres", pool=pool),
        reranker=make_reranker(settings.rerank_model, embeddings),
        composer=make_composer(settings.chat_model, embeddings),
    )
