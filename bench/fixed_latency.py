"""The fake provider with the issue's fixed latencies, and the production settings that use it.

One owner for the latencies every production-mode benchmark runs against (load sweep, TTFT
against the ideal, the v1 baseline, the peer): LLM router 300 ms, embeddings 120 ms, rerank
150 ms, LLM first token 400 ms, then 30 tokens/s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from devtools.processes import ServerProcess, clean_environment, free_port

# What the fake's embeddings return (the production setting EMBEDDING_DIMENSIONS says the same).
DIMENSIONS = 256


@dataclass(frozen=True)
class Latencies:
    """The fake provider's fixed latencies (ms, and tokens per second once streaming)."""

    router_ms: float = 300
    embeddings_ms: float = 120
    rerank_ms: float = 150
    llm_first_token_ms: float = 400
    tokens_per_second: float = 30

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


LATENCIES = Latencies()


def start_fake_provider(latencies: Latencies = LATENCIES) -> ServerProcess:
    """`devtools.fake_provider` in its own process (call `ready()` before use, `stop()` after)."""
    port = free_port()
    return ServerProcess(
        clean_environment(PORT=str(port)),
        command=(
            *("-m", "devtools.fake_provider", "--port", str(port)),
            *("--ttft-ms", str(latencies.llm_first_token_ms)),
            *("--token-delay-ms", str(1000 / latencies.tokens_per_second)),
            *("--completion-ms", str(latencies.router_ms)),
            *("--embedding-delay-ms", str(latencies.embeddings_ms)),
            *("--rerank-delay-ms", str(latencies.rerank_ms)),
            *("--embedding-dimensions", str(DIMENSIONS)),
        ),
        health_path="/v1/models",
    )


def production_settings(fake_url: str) -> dict[str, str]:
    """The environment that puts every provider role (LLM router, OpenAI embeddings, Cohere
    rerank, OpenRouter answer) on the fake, with timeouts far above its latencies."""
    return {
        "OPENROUTER_API_KEY": "bench",
        "OPENROUTER_BASE_URL": f"{fake_url}/v1",
        "LLM_MODEL": "openai/gpt-4o-mini",
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "EMBEDDING_DIMENSIONS": str(DIMENSIONS),
        "COHERE_API_KEY": "bench",
        "COHERE_BASE_URL": fake_url,
        "LLM_FIRST_TOKEN_TIMEOUT_SECONDS": "30",
        "ROUTER_TIMEOUT_SECONDS": "30",
        "RERANK_TIMEOUT_SECONDS": "30",
        "EMBEDDING_TIMEOUT_SECONDS": "30",
        "LLM_TIMEOUT_SECONDS": "120",
    }
