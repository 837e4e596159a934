"""Answer composers: they turn reranked passages into the persona's streamed answer."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from langchain_core.messages import AIMessage, AnyMessage

from graph.providers.embeddings import EmbeddingCache, cosine
from graph.state import Passage, Route, Usage
from graph.text import split_sentences, tokens_of
from prompts.personas import ESCALATE_CONTACT_QUERY, PERSONAS, Persona


@dataclass(frozen=True)
class AnswerRequest:
    """Everything a composer may use to answer one turn."""

    route: Route
    question: str
    query: str
    passages: Sequence[Passage]
    history: Sequence[AnyMessage] = ()


@dataclass(frozen=True)
class AnswerChunk:
    """A text delta; the last chunk of a stream may carry only the model and usage."""

    text: str = ""
    model: str | None = None
    usage: Usage | None = None
    meta: dict[str, object] = field(default_factory=dict)


class AnswerComposer(Protocol):
    """Streams an answer for a request."""

    name: str
    uses_llm: bool

    def astream(self, request: AnswerRequest) -> AsyncIterator[AnswerChunk]: ...


@dataclass(frozen=True)
class _Candidate:
    passage_rank: int
    position: int
    text: str


class ExtractiveComposer:
    """The embedded default: no LLM. It quotes the knowledge base's most relevant sentences in
    the persona's frame, cites them by number, and streams the result word by word."""

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
        sources = " · ".join(f"[{n}] {_label(request.passages[n - 1])}" for n in cited)
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
        for token in tokens_of(text):
            yield AnswerChunk(text=token)
            # Hand the loop back between words so each one is flushed as its own event.
            await asyncio.sleep(0)
        yield AnswerChunk(model=self.name, usage=Usage())


def _label(passage: Passage) -> str:
    """How a source is named in the answer: its title and section."""
    title = passage.title or passage.source
    return f"{title} — {passage.section}" if passage.section else title


def make_composer(name: str, embeddings: EmbeddingCache) -> AnswerComposer:
    """Build the composer named `provider/model`."""
    provider, _, _ = name.partition("/")
    match provider:
        case "extractive":
            return ExtractiveComposer(embeddings)
        case _:
            raise ValueError(f"Unknown chat model provider {provider!r} in {name!r}")
