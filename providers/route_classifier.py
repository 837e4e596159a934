"""The router's classifier: class probabilities for a message, from its e5 embedding and its
character n-grams.

A multinomial logistic regression fitted offline on the fit data only (`python -m evals fit`,
which owns the training code and scikit-learn), shipped as plain arrays in
`prompts/router_classifier.npz` with its policy and provenance in `prompts/router_classifier.json`.
Loading is a few array reads (no pickle) and a prediction is a dot product, so the router's cost
is the embedding it shares with retrieval.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from core.domain import ROUTES, Route
from core.settings import ROOT
from core.text import fold

WEIGHTS_PATH = ROOT / "prompts" / "router_classifier.npz"
POLICY_PATH = ROOT / "prompts" / "router_classifier.json"

# Character n-grams inside word boundaries, on folded text: they survive typos, missing accents
# and SMS spelling ("jveux", "cmt"), which the embedding alone reads poorly.
NGRAM_RANGE = (2, 5)
_WORD = re.compile(r"\w+", re.UNICODE)

Floats = NDArray[np.float32]


def char_ngrams(text: str) -> list[str]:
    """The character n-grams of each folded word, padded with a space on both sides."""
    grams: list[str] = []
    low, high = NGRAM_RANGE
    for word in _WORD.findall(fold(text)):
        padded = f" {word} "
        for n in range(low, high + 1):
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


def ngram_features(
    text: str, vocabulary: dict[str, int], idf: Floats
) -> tuple[NDArray[np.int64], Floats]:
    """Sparse TF-IDF of `text` over `vocabulary`: (column indices, values), L2-normalised.

    Term frequency is sublinear (1 + log count). Shared by fitting and prediction, so both see
    the same features.
    """
    counts = Counter(g for g in char_ngrams(text) if g in vocabulary)
    if not counts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    index = np.fromiter((vocabulary[g] for g in counts), dtype=np.int64, count=len(counts))
    values = np.fromiter(
        (1.0 + math.log(c) for c in counts.values()), dtype=np.float32, count=len(counts)
    )
    values *= idf[index]
    values /= np.float32(np.linalg.norm(values))
    return index, values


@dataclass(frozen=True)
class RoutePolicy:
    """How class probabilities become a route (fitted with the weights, see `evals/fit.py`).

    The classifier reads a message as if it opened a conversation. When a specialist is already
    answering, the prior is not the same: people go on with her rather than ask for a person,
    and a short follow-up ("et sur pipedrive ?") says even less on its own. So, in a
    conversation, the escalate log-odds are lowered and the previous specialist's raised, each
    by a conversation amount plus a follow-up amount for a short message (plus `answer_boost`
    for an answer to her question). A short follow-up is also read with the question before it,
    with `context_weight` in the mix of log-odds (0: the message alone).
    """

    escalate_threshold: float = 0.35
    conversation_escalate_shift: float = 0.0
    follow_up_escalate_shift: float = 0.0
    conversation_boost: float = 0.0
    follow_up_boost: float = 0.0
    answer_boost: float = 0.0
    context_weight: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutePolicy:
        return cls(**{k: float(data[k]) for k in cls.__dataclass_fields__ if k in data})

    @property
    def size(self) -> float:
        """How far the policy moves the classifier's own reading (ties prefer the least)."""
        return (
            self.conversation_escalate_shift
            + self.follow_up_escalate_shift
            + self.conversation_boost
            + self.follow_up_boost
            + self.answer_boost
            + self.context_weight
        )


class RouteClassifier:
    """Class probabilities over `ROUTES` for a message and its embedding."""

    def __init__(
        self,
        *,
        classes: tuple[Route, ...],
        vocabulary: list[str],
        idf: Floats,
        embedding_coef: Floats,
        ngram_coef: Floats,
        intercept: Floats,
        ngram_weight: float,
        temperature: float,
        policy: RoutePolicy,
        meta: dict[str, Any] | None = None,
    ):
        if set(classes) != set(ROUTES):
            raise ValueError(f"classifier classes {classes} are not the routes {ROUTES}")
        # Reorder rows once so probabilities come out in ROUTES order.
        order = [classes.index(route) for route in ROUTES]
        self.vocabulary = {gram: i for i, gram in enumerate(vocabulary)}
        self.idf = idf.astype(np.float32)
        self.embedding_coef = embedding_coef[order].astype(np.float32)
        self.ngram_coef = ngram_coef[order].astype(np.float32)
        self.intercept = intercept[order].astype(np.float32)
        self.ngram_weight = float(ngram_weight)
        self.temperature = float(temperature)
        self.policy = policy
        self.meta = meta or {}

    def with_policy(self, policy: RoutePolicy, meta: dict[str, Any]) -> RouteClassifier:
        """The same weights with another policy and provenance."""
        return RouteClassifier(
            classes=ROUTES,
            vocabulary=sorted(self.vocabulary, key=self.vocabulary.__getitem__),
            idf=self.idf,
            embedding_coef=self.embedding_coef,
            ngram_coef=self.ngram_coef,
            intercept=self.intercept,
            ngram_weight=self.ngram_weight,
            temperature=self.temperature,
            policy=policy,
            meta=meta,
        )

    @property
    def dimensions(self) -> int:
        return int(self.embedding_coef.shape[1])

    def logits(self, text: str, embedding: Floats) -> Floats:
        """Calibrated log-odds (before softmax), in ROUTES order."""
        if embedding.shape != (self.dimensions,):
            raise ValueError(
                f"the classifier expects {self.dimensions}-d embeddings, got {embedding.shape}"
            )
        index, values = ngram_features(text, self.vocabulary, self.idf)
        z = self.embedding_coef @ embedding + self.intercept
        if index.size:
            z = z + self.ngram_coef[:, index] @ (values * np.float32(self.ngram_weight))
        scaled: Floats = (z / np.float32(self.temperature)).astype(np.float32)
        return scaled

    def probabilities(self, text: str, embedding: Floats) -> dict[Route, float]:
        """P(route | message), calibrated on the fit data."""
        return softmax(dict(zip(ROUTES, self.logits(text, embedding).tolist(), strict=True)))

    @classmethod
    def load(cls, weights: Path = WEIGHTS_PATH, policy: Path = POLICY_PATH) -> RouteClassifier:
        """Read the shipped weights (plain arrays, `allow_pickle=False`) and policy."""
        meta = json.loads(policy.read_text(encoding="utf-8"))
        with np.load(weights, allow_pickle=False) as arrays:
            return cls(
                classes=tuple(_route(str(c)) for c in arrays["classes"]),
                vocabulary=[str(g) for g in arrays["vocabulary"]],
                idf=arrays["idf"],
                embedding_coef=arrays["embedding_coef"],
                ngram_coef=arrays["ngram_coef"],
                intercept=arrays["intercept"],
                ngram_weight=float(arrays["ngram_weight"]),
                temperature=float(arrays["temperature"]),
                policy=RoutePolicy.from_dict(meta["policy"]),
                meta=meta,
            )

    def save(self, weights: Path = WEIGHTS_PATH, policy: Path = POLICY_PATH) -> None:
        """Write the arrays and the policy where `load` reads them."""
        vocabulary = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        np.savez_compressed(
            weights,
            classes=np.asarray(ROUTES),
            vocabulary=np.asarray(vocabulary),
            idf=self.idf,
            embedding_coef=self.embedding_coef,
            ngram_coef=self.ngram_coef,
            intercept=self.intercept,
            ngram_weight=np.float32(self.ngram_weight),
            temperature=np.float32(self.temperature),
        )
        meta = {**self.meta, "policy": self.policy.__dict__}
        policy.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def softmax(logits: dict[Route, float]) -> dict[Route, float]:
    """Probabilities from log-odds, numerically stable."""
    top = max(logits.values())
    exps = {route: math.exp(value - top) for route, value in logits.items()}
    total = sum(exps.values())
    return {route: value / total for route, value in exps.items()}


def _route(name: str) -> Route:
    for route in ROUTES:
        if route == name:
            return route
    raise ValueError(f"unknown route {name!r} in the classifier file")
