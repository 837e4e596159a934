"""A real embedded Postgres 18 + pgvector for the session, and a live uvicorn server on it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from core.settings import ROOT, Settings
from devtools.fake_provider import FakeConfig, FakeProvider, fake_provider
from devtools.processes import free_port
from server import serve_in_background
from services import Services, open_services
from store.migrations import apply_migrations
from store.postgres import start_embedded, stop_embedded
from tests.integration.local_http import Receiver, receiver

# Enough of the sample knowledge base for the seed's two questions and an escalation.
KNOWLEDGE_SUBSET = {
    "audrey": [
        "sequence-email-bienvenue.md",
        "delivrabilite-spf-dkim-dmarc.md",
        "sequence-reengagement.txt",
    ],
    "carole": [
        "creer-un-reel-viral-instagram.md",
        "youtube-shorts.html",
        "calendrier-editorial.md",
    ],
    "shared": ["contacter-un-humain.md", "qui-sommes-nous.md"],
}


def postgres_dir(prefix: str) -> Path:
    """A folder for an embedded Postgres, outside pytest's temporary root: the server runs as
    another user, and a concurrent pytest session resets that root to mode 0700."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = postgres_dir("chatbot-test-")
    yield path
    stop_embedded(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def knowledge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("knowledge")
    for owner, names in KNOWLEDGE_SUBSET.items():
        (root / owner).mkdir()
        for name in names:
            shutil.copy(ROOT / "knowledge" / owner / name, root / owner / name)
    return root


@pytest.fixture(scope="session")
def settings(data_dir: Path, knowledge_dir: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=None,
        data_dir=data_dir,
        knowledge_dir=knowledge_dir,
        rate_limit_per_minute=1000,
    )


@pytest.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with open_services(settings) as built:
        yield built


async def fresh_database(data_dir: Path, name: str) -> str:
    """A new, migrated database on the session's server (for tests that count rows)."""
    url = start_embedded(data_dir)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'drop database if exists "{name}"'.encode())
        await conn.execute(f'create database "{name}"'.encode())
    scoped = url.replace("/postgres?", f"/{name}?")
    await apply_migrations(scoped)
    return scoped


_free_port = free_port  # the tests' historical name for devtools.processes.free_port


def on_fake_provider(
    fake: FakeProvider,
    database_url: str,
    knowledge_dir: Path,
    *,
    llm: str,
    router: str,
    **overrides: Any,
) -> Settings:
    """Production mode with every provider on the project's fake provider (the real client
    libraries over HTTP), no rate limit and no retries unless `overrides` say otherwise."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "knowledge_dir": knowledge_dir,
        "rate_limit_per_minute": 0,
        "openrouter_api_key": "test-key",
        "openrouter_base_url": fake.openai_base_url,
        "llm_model": llm,
        "router_model": router,
        "llm_max_retries": 0,
        "llm_first_token_timeout_seconds": 20.0,
        "openai_api_key": "test-key",
        "openai_base_url": fake.openai_base_url,
        "embedding_dimensions": 256,
        "cohere_api_key": "test-key",
        "cohere_base_url": fake.cohere_base_url,
    }
    return Settings(_env_file=None, **{**values, **overrides})


class LiveServer:
    """The app on a loopback port (see `server.serve_in_background`), restartable."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._stack: AsyncExitStack | None = None

    async def start(self) -> None:
        self._stack = AsyncExitStack()
        await self._stack.enter_async_context(serve_in_background(self.settings, self.port))

    async def stop(self) -> None:
        assert self._stack is not None
        await self._stack.aclose()


@pytest.fixture(scope="session")
async def live_server(settings: Settings, services: Services) -> AsyncIterator[LiveServer]:
    # `services` first: the knowledge base is ingested once, before the server starts.
    server = LiveServer(settings)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        yield http


# Production generator and router on the project's fake provider, tokens paced like a real LLM
# (the widget's browser tests watch tokens arrive; the metrics tests script provider faults).
LLM_PRIMARY, LLM_FALLBACK, LLM_ROUTER = "primary/model", "fallback/model", "router/model"
LLM_ADMIN_TOKEN = "llm-admin-token"
WEBHOOK_SECRET = "webhook-secret-for-tests"


@pytest.fixture(scope="session")
async def fake_llm() -> AsyncIterator[FakeProvider]:
    async with fake_provider(FakeConfig(ttft_ms=150, token_delay_ms=40)) as provider:
        yield provider


@pytest.fixture(scope="session")
async def webhook() -> AsyncIterator[Receiver]:
    """The team's webhook receiver (answers 200 unless a test queues other statuses)."""
    async with receiver() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
async def llm_server(
    settings: Settings, services: Services, fake_llm: FakeProvider, webhook: Receiver
) -> AsyncIterator[LiveServer]:
    """The app with OpenRouter-style generation and routing on the fake; same database and
    local embeddings as the session's server. Developer tools on (LLM_ADMIN_TOKEN), hand-off
    webhooks to `webhook`, retried quickly."""
    server = LiveServer(
        settings.model_copy(
            update={
                "openrouter_api_key": SecretStr("test-key"),
                "openrouter_base_url": fake_llm.openai_base_url,
                "llm_model": LLM_PRIMARY,
                "llm_fallback_models": [LLM_FALLBACK],
                "router_model": LLM_ROUTER,
                "llm_max_retries": 0,
                "admin_token": SecretStr(LLM_ADMIN_TOKEN),
                "handoff_webhook_url": webhook.url,
                "handoff_webhook_secret": SecretStr(WEBHOOK_SECRET),
                "handoff_webhook_backoff_seconds": 0.05,
            }
        )
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def limited_server(settings: Settings, services: Services) -> AsyncIterator[LiveServer]:
    """The app with a rate limit of 2 messages a minute (per user and per client address)."""
    server = LiveServer(settings.model_copy(update={"rate_limit_per_minute": 2}))
    await server.start()
    yield server
    await server.stop()
