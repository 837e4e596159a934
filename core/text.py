"""French text handling shared by the router, the reranker and the generator."""

from __future__ import annotations

import re
import unicodedata

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[A-ZÀ-ÖØ-Þ0-9«\"“(])")
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_MD_DECOR = re.compile(r"(\*\*|__|`)")
_WORD = re.compile(r"\w+", re.UNICODE)


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Réclamation" and "reclamation" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """The words of a message, folded."""
    return _WORD.findall(fold(text))


def split_sentences(text: str) -> list[str]:
    """Split a passage into quotable sentences: headings dropped, list items kept whole."""
    sentences: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = _MD_DECOR.sub("", _LIST_MARK.sub("", line)).strip()
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


def tokens_of(text: str) -> list[str]:
    """Cut an answer into word-sized deltas (each keeps its trailing space) for streaming."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def phrases_of(text: str, max_chars: int = 48) -> list[str]:
    """Cut an answer into deltas of whole words, each ending at a line break or once it holds
    `max_chars` characters: what a model streams in a few tokens, at a fraction of the events
    (each event is work for the server's loop)."""
    phrases: list[str] = []
    current = ""
    for token in tokens_of(text):
        current += token
        if len(current) >= max_chars or "\n" in token:
            phrases.append(current)
            current = ""
    if current:
        phrases.append(current)
    return phrases
