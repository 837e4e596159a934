"""Chat models: one place that builds them from a `provider/model` string, and prices them."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from core.domain import Usage
from core.settings import Settings


def make_chat_model(name: str, settings: Settings, *, timeout: float | None = None) -> ChatOpenAI:
    """A chat model for `provider/model`; `openrouter/<model>` is any OpenAI-compatible server.

    OpenRouter model ids contain a slash themselves (`openai/gpt-4o-mini`), so only the first
    segment names the provider.
    """
    provider, _, model = name.partition("/")
    match provider:
        case "openrouter":
            if settings.openrouter_api_key is None:
                raise ValueError("OPENROUTER_API_KEY is required for openrouter/ models")
            return ChatOpenAI(
                model=model,
                api_key=settings.openrouter_api_key,
                base_url=settings.openrouter_base_url,
                timeout=timeout or settings.llm_timeout_seconds,
                # Retries happen on the request, before any token is streamed.
                max_retries=settings.llm_max_retries,
                stream_usage=True,
                temperature=0.3,
                default_headers={"X-Title": "L'Agence des Copines chatbot"},
            )
        case _:
            raise ValueError(f"Unknown chat model provider {provider!r} in {name!r}")


def price(usage: Usage, model: str, table: dict[str, dict[str, float]]) -> Usage:
    """`usage` with its cost from `table` (USD per million tokens); 0 for an unpriced model."""
    rates = table.get(model) or table.get(model.partition("/")[2]) or {}
    cost = (
        usage.input_tokens * rates.get("input", 0.0)
        + usage.output_tokens * rates.get("output", 0.0)
    ) / 1_000_000
    return usage.model_copy(update={"cost_usd": round(cost, 8)})
