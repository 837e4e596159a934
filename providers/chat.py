"""Chat models: one place that builds them from a `provider/model` string, and prices them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from openai import DefaultAioHttpClient

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
                http_async_client=async_http_client(),
            )
        case _:
            raise ValueError(f"Unknown chat model provider {provider!r} in {name!r}")


def request_payload(
    model: ChatOpenAI, messages: Sequence[BaseMessage], **kwargs: Any
) -> dict[str, Any]:
    """ChatOpenAI's request for `messages`, as keyword arguments of the SDK's `create`.

    The messages go through `extra_body`, which the SDK merges into the JSON body as given:
    `create` otherwise walks every message against its typed parameters (about 1.4 ms of
    event-loop time for an answer's prompt, a few percent of a turn's CPU), for messages that
    ChatOpenAI has already built as plain JSON. The request on the wire is the same.
    """
    # ChatOpenAI's own request building (private, but the one place that knows its settings).
    payload = model._get_request_payload(list(messages), **kwargs)
    extra_body = dict(payload.pop("extra_body", None) or {})
    extra_body["messages"] = payload.pop("messages")
    return {**payload, "messages": [], "extra_body": extra_body}


def async_http_client() -> DefaultAioHttpClient:
    """The OpenAI SDK's async client on aiohttp instead of httpx's own transport.

    Reading a streamed answer (one network read per token at a model's pace) costs about half
    the CPU this way (4.9 -> 2.5 ms per 74-line stream, 40 at once), and the event loop is what
    limits how many turns one worker serves. Same SDK, same requests, same errors and timeouts.
    Whoever builds providers closes it (`collect_http_clients`).
    """
    client = DefaultAioHttpClient()
    if (made := _MADE.get()) is not None:
        made.append(client)
    return client


_MADE: ContextVar[list[DefaultAioHttpClient] | None] = ContextVar("http_clients", default=None)


@contextmanager
def collect_http_clients() -> Iterator[list[DefaultAioHttpClient]]:
    """The clients `async_http_client` makes inside (also in threads started inside), for their
    owner to close: aiohttp warns about a session left open."""
    made: list[DefaultAioHttpClient] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


def price(usage: Usage, model: str, table: dict[str, dict[str, float]]) -> Usage:
    """`usage` with its cost from `table` (USD per million tokens); 0 for an unpriced model."""
    rates = table.get(model) or table.get(model.partition("/")[2]) or {}
    cost = (
        usage.input_tokens * rates.get("input", 0.0)
        + usage.output_tokens * rates.get("output", 0.0)
    ) / 1_000_000
    return usage.model_copy(update={"cost_usd": round(cost, 8)})
