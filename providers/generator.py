"""Generators: they turn reranked passages into the persona's streamed answer.

The embedded default quotes the knowledge base (no LLM); production prompts a chat model with
fallback models. Both implement `Generator`, built by `make_generator("provider/model")`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from core.domain import Passage, Route, Usage
from core.metrics import PROVIDER_ERRORS, PROVIDER_FALLBACKS
from core.settings import Settings
from core.text import phrases_of, split_sentences
from prompts.generator import DOCUMENTS_FRAME, HISTORY_MESSAGES, NO_DOCUMENTS, format_documents
from prompts.personas import ESCALATE_CONTACT_QUERY, PERSONAS, Persona
from providers.chat import make_chat_model, price, request_payload
from providers.embeddings import EmbeddingCache, cosine


@dataclass(frozen=True)
class AnswerRequest:
    """Everything a generator may use to answer one turn."""

    route: Route
    question: str
    query: str
    passages: Sequence[Passage]
    history: Sequence[AnyMessage] = ()


@dataclass(frozen=True)
class AnswerChunk:
    """A text delta, or news about the answer: the model serving it as soon as it is known,
    then (last chunk) the model that served, its usage and the models that failed first."""

    text: str = ""
    serving_model: str | None = None
    model: str | None = None
    usage: Usage | None = None
    fallbacks: tuple[str, ...] = ()


class Generator(Protocol):
    """Streams an answer for a request."""

    name: str
    uses_llm: bool

    def astream(self, request: AnswerRequest) -> AsyncIterator[AnswerChunk]: ...


@dataclass(frozen=True)
class _Candidate:
    passage_rank: int
    position: int
    text: str


class ExtractiveGenerator:
    """The embedded default: no LLM. It quotes the knowledge base's most relevant sentences in
    the persona's frame, cites them by number, and streams the result a phrase at a time."""

    name = "extractive/v1"
    uses_llm = False

    def __init__(
        self,
        embeddings: EmbeddingCache,
        max_passages: int = 3,
        max_sentences: int = 4,
        max_chars: int = 700,
        tolerance: float = 0.04,
    ):
        self._embeddings = embeddings
        self._max_passages = max_passages
        self._max_sentences = max_sentences
        self._max_chars = max_chars
        self._tolerance = tolerance

    async def select(
        self, query: str, passages: Sequence[Passage], already_said: str = ""
    ) -> list[tuple[int, str]]:
        """The (source number, sentence) pairs worth quoting, in reading order.

        Fragments (a list item that continues a sentence) are skipped, and so is anything this
        conversation already quoted: a follow-up gets new information, not a repeat.
        """
        candidates = [
            _Candidate(rank, position, sentence)
            for rank, passage in enumerate(passages[: self._max_passages])
            for position, sentence in enumerate(split_sentences(passage.content))
            if 30 <= len(sentence) <= 400
            and not sentence[0].islower()
            and not sentence.endswith((":", ";", ","))
            and sentence not in already_said
        ]
        if not candidates:
            return []
        sims = cosine(
            await self._embeddings.texts([c.text for c in candidates]),
            await self._embeddings.query(query),
        )
        # Prefer earlier (better reranked) passages slightly when sentences tie.
        scored = sorted(
            ((float(sims[i]) - 0.01 * c.passage_rank, c) for i, c in enumerate(candidates)),
            key=lambda pair: pair[0],
            reverse=True,
        )
        best = scored[0][0]
        chosen: list[_Candidate] = []
        length = 0
        for score, candidate in scored:
            if len(chosen) >= self._max_sentences or score < best - self._tolerance:
                break
            if chosen and length + len(candidate.text) > self._max_chars:
                continue
            chosen.append(candidate)
            length += len(candidate.text)
        chosen.sort(key=lambda c: (c.passage_rank, c.position))
        return [(c.passage_rank + 1, c.text) for c in chosen]

    def _pick(self, options: Sequence[str], question: str) -> str:
        digest = hashlib.sha256(question.encode("utf-8")).digest()
        return options[digest[0] % len(options)]

    async def compose(self, request: AnswerRequest) -> str:
        """The whole answer text."""
        persona: Persona = PERSONAS[request.route]
        already_said = "\n".join(m.text for m in request.history if isinstance(m, AIMessage))
        if request.route == "escalate":
            # Quote how to reach the team, whatever the request was about.
            quotes = await self.select(ESCALATE_CONTACT_QUERY, request.passages)
            parts = [self._pick(persona.openings, request.question)]
            if quotes:
                number, sentence = quotes[0]
                parts.append(f"En attendant : {sentence} [{number}]")
            parts.append(self._pick(persona.closings, request.question))
            return "\n\n".join(parts)
        # The retrieval query carries the previous question for a follow-up; sentences are picked
        # for what is asked now.
        quotes = await self.select(request.question, request.passages, already_said)
        if not quotes:
            return persona.no_answer
        cited = sorted({number for number, _ in quotes})
        lines = [f"- {sentence} [{number}]" for number, sentence in quotes]
        sources = " · ".join(f"[{n}] {request.passages[n - 1].label}" for n in cited)
        return "\n\n".join(
            [
                self._pick(persona.openings, request.question),
                "\n".join(lines),
                self._pick(persona.closings, request.question),
                f"Sources : {sources}",
            ]
        )

    async def astream(self, request: AnswerRequest) -> AsyncIterator[AnswerChunk]:
        text = await self.compose(request)
        for phrase in phrases_of(text):
            yield AnswerChunk(text=phrase)
            # Hand the loop back between phrases so each one is flushed as its own event.
            await asyncio.sleep(0)
        yield AnswerChunk(model=self.name, usage=Usage())


class AllModelsFailed(Exception):
    """Every model of the fallback chain failed before its first token."""


class LLMGenerator:
    """Production generator: the persona prompt on a chat model, with fallback models.

    A model is abandoned for the next one only before its first *content* token (an
    OpenAI-style stream opens with an empty role delta, which does not count). Once text has
    reached the user, a failure propagates: the turn ends with an `error` event and the partial
    answer is saved as interrupted.

    The request is built by langchain-openai's `ChatOpenAI` (its message conversion, model and
    sampling settings) and sent through the OpenAI SDK client that `ChatOpenAI` configured (base
    URL, key, timeout, retries, headers), but the stream is read as raw SSE lines: going through
    `ChatOpenAI.astream` costs about ten times more CPU per token (a pydantic chunk from the SDK,
    then a message chunk and callbacks from LangChain), which one worker cannot afford at a few
    thousand tokens a second (`bench/load.py`).
    """

    uses_llm = True

    def __init__(
        self,
        models: Sequence[tuple[str, ChatOpenAI]],
        prices: dict[str, dict[str, float]],
        first_token_timeout: float,
    ):
        if not models:
            raise ValueError("at least one model is needed")
        self._models = list(models)
        self._prices = prices
        self._first_token_timeout = first_token_timeout
        self.name = models[0][0]

    def prompt(self, request: AnswerRequest) -> list[BaseMessage]:
        """System persona with the passages fenced as data, recent history, the question."""
        persona = PERSONAS[request.route]
        documents = format_documents(
            [(i + 1, p.label, p.content) for i, p in enumerate(request.passages)]
        )
        system = persona.system + (
            DOCUMENTS_FRAME.format(documents=documents) if documents else NO_DOCUMENTS
        )
        history = [
            m for m in request.history if isinstance(m, HumanMessage | AIMessage) and m.text
        ][-HISTORY_MESSAGES:]
        return [SystemMessage(system), *history, HumanMessage(request.question)]

    async def astream(self, request: AnswerRequest) -> AsyncIterator[AnswerChunk]:
        messages = self.prompt(request)
        failures: list[str] = []
        for name, model in self._models:
            started = False
            served = name
            usage = Usage()
            try:
                async with _Deltas(model, messages) as deltas:
                    while True:
                        try:
                            if started:
                                delta = await anext(deltas)
                            else:
                                async with asyncio.timeout(self._first_token_timeout):
                                    delta = await anext(deltas)
                        except StopAsyncIteration:
                            break
                        served = delta.model or served
                        usage = delta.usage or usage
                        if delta.text:
                            if not started:
                                started = True
                                yield AnswerChunk(serving_model=_qualify(name, served))
                            yield AnswerChunk(text=delta.text)
            except Exception as exc:
                PROVIDER_ERRORS.labels(role="generator", provider=name).inc()
                if started:
                    raise
                failures.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
                continue
            if not started:
                PROVIDER_ERRORS.labels(role="generator", provider=name).inc()
                failures.append(f"{name}: empty answer")
                continue
            if failures:
                PROVIDER_FALLBACKS.labels(role="generator").inc()
            model_name = _qualify(name, served)
            yield AnswerChunk(
                model=model_name,
                usage=price(usage, model_name, self._prices),
                fallbacks=tuple(failures),
            )
            return
        raise AllModelsFailed("; ".join(failures))


@dataclass(frozen=True)
class _Delta:
    text: str = ""
    model: str | None = None
    usage: Usage | None = None


class _Deltas:
    """One streamed chat completion as text deltas, read from the SSE lines of the response."""

    def __init__(self, model: ChatOpenAI, messages: list[BaseMessage]):
        payload = request_payload(model, messages, stream=True)
        payload["stream_options"] = {"include_usage": True}
        self._request = model.root_async_client.chat.completions.with_streaming_response.create(
            **payload
        )
        self._response: Any = None
        self._lines: AsyncIterator[str] | None = None

    async def __aenter__(self) -> _Deltas:
        self._response = await self._request.__aenter__()
        self._lines = aiter(self._response.iter_lines())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._request.__aexit__(*exc)

    def __aiter__(self) -> _Deltas:
        return self

    async def __anext__(self) -> _Delta:
        assert self._lines is not None
        async for line in self._lines:
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"stream error: {str(chunk['error'])[:200]}")
            choices = chunk.get("choices") or []
            text = (choices[0].get("delta") or {}).get("content") or "" if choices else ""
            found = chunk.get("usage")
            return _Delta(
                text=text,
                model=chunk.get("model"),
                usage=Usage(
                    input_tokens=int(found.get("prompt_tokens") or 0),
                    output_tokens=int(found.get("completion_tokens") or 0),
                )
                if found
                else None,
            )
        raise StopAsyncIteration


def _qualify(configured: str, served: str) -> str:
    """`openrouter/<model actually served>` (OpenRouter may echo a more precise model id)."""
    provider = configured.partition("/")[0]
    return served if served.startswith(f"{provider}/") else f"{provider}/{served}"


def make_generator(name: str, embeddings: EmbeddingCache, settings: Settings) -> Generator:
    """Build the generator named `provider/model` (with the configured fallbacks for an LLM)."""
    provider, _, model = name.partition("/")
    match provider:
        case "extractive":
            return ExtractiveGenerator(embeddings)
        case "openrouter":
            chain = [model, *[m for m in settings.llm_fallback_models if m != model]]
            return LLMGenerator(
                [(f"openrouter/{m}", make_chat_model(f"openrouter/{m}", settings)) for m in chain],
                prices=settings.llm_prices,
                first_token_timeout=settings.llm_first_token_timeout_seconds,
            )
        case _:
            raise ValueError(f"Unknown chat model provider {provider!r} in {name!r}")
