"""Baselines the eval compares the shipped router with: the v1 keyword routing and the
nearest-neighbour router over labelled examples that v2 shipped before the classifier."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.domain import ROUTES, Route, RouteDecision, RouteQuery
from core.settings import ROOT
from core.text import fold
from providers.embeddings import EmbeddingCache, Vector
from providers.router import explicit_escalation

EXAMPLES_PATH = ROOT / "prompts" / "router_examples.json"

# The seed's v1 n8n workflow routed on keyword lists ("Keywords routing (simpliste)"); this is
# that baseline, written the way such a workflow is: first list with a hit wins, Audrey first,
# anything else goes to a human.
V1_KEYWORDS: dict[str, tuple[str, ...]] = {
    "audrey": (
        "automat",
        "email",
        "e-mail",
        "mail",
        "newsletter",
        "crm",
        "zapier",
        "make",
        "n8n",
        "sequence",
        "funnel",
        "tunnel",
        "delivrabilite",
        "spam",
        "brevo",
        "hubspot",
        "workflow",
    ),
    "carole": (
        "reel",
        "instagram",
        "insta",
        "tiktok",
        "post",
        "linkedin",
        "contenu",
        "story",
        "stories",
        "carrousel",
        "copywriting",
        "calendrier",
        "editorial",
        "hashtag",
        "video",
        "legende",
    ),
}


class KeywordRouter:
    """v1 baseline: substring keywords, no context."""

    name = "keyword/v1"

    async def warm(self) -> None:
        return None

    async def route(self, query: RouteQuery) -> RouteDecision:
        folded = fold(query.message)
        for route, keywords in V1_KEYWORDS.items():
            hit = next((k for k in keywords if k in folded), None)
            if hit is not None:
                return RouteDecision(
                    route="audrey" if route == "audrey" else "carole",
                    confidence=1.0,
                    reason=f"keyword {hit!r}",
                    router=self.name,
                )
        return RouteDecision(
            route="escalate", confidence=1.0, reason="no keyword", router=self.name
        )


@dataclass(frozen=True)
class KnnExamples:
    """Labelled utterances and the policy numbers of the kNN baseline (its last calibration)."""

    examples: dict[Route, list[str]]
    threshold: float = 0.0
    top_k: int = 3
    follow_up_margin: float = 0.05

    @classmethod
    def load(cls, path: Path = EXAMPLES_PATH) -> KnnExamples:
        """The hand-written examples plus the fit split's messages, and the calibrated policy."""
        data = json.loads(path.read_text(encoding="utf-8"))
        policy = data.get("policy", {})
        fitted = data.get("fitted_examples", {})
        examples: dict[Route, list[str]] = {
            route: list(dict.fromkeys([*data["examples"][route], *fitted.get(route, [])]))
            for route in ROUTES
        }
        return cls(
            examples=examples,
            threshold=float(policy.get("threshold", cls.threshold)),
            top_k=int(policy.get("top_k", cls.top_k)),
            follow_up_margin=float(policy.get("follow_up_margin", cls.follow_up_margin)),
        )


def _unit(x: Vector) -> Vector:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    result: Vector = (x / np.where(norm == 0, 1.0, norm)).astype(np.float32)
    return result


class KnnRouter:
    """v2's first router: centred e5 similarities to labelled examples (half top-k neighbours,
    half centroid); a score under the threshold escalates; a short follow-up stays with the
    previous specialist unless the other clearly wins. Kept to measure what replaced it."""

    name = "embedding/e5-knn"

    def __init__(self, embeddings: EmbeddingCache, examples: KnnExamples):
        self._embeddings = embeddings
        self.examples = examples
        self._matrix: Vector | None = None
        self._mean: Vector | None = None
        self._labels: list[Route] = []
        self._centroids: dict[Route, Vector] = {}

    async def warm(self) -> None:
        labels: list[Route] = [route for route in ROUTES for _ in self.examples.examples[route]]
        texts = [text for route in ROUTES for text in self.examples.examples[route]]
        # All at once, so an engine that batches concurrent queries embeds them together.
        vectors = await asyncio.gather(*(self._embeddings.query(text) for text in texts))
        matrix = np.stack(vectors)
        self._mean = matrix.mean(axis=0)
        self._matrix = _unit(matrix - self._mean)
        self._labels = labels
        mask = np.asarray(labels)
        self._centroids = {
            route: _unit(self._matrix[mask == route].mean(axis=0)) for route in ROUTES
        }

    async def scores(self, message: str) -> dict[Route, float]:
        if self._matrix is None or self._mean is None:
            await self.warm()
        assert self._matrix is not None
        assert self._mean is not None
        query = _unit(await self._embeddings.query(message) - self._mean)
        sims = self._matrix @ query
        mask = np.asarray(self._labels)
        result: dict[Route, float] = {}
        for route in ROUTES:
            top = np.sort(sims[mask == route])[::-1][: self.examples.top_k]
            knn = float(top.mean()) if top.size else 0.0
            result[route] = 0.5 * knn + 0.5 * float(self._centroids[route] @ query)
        return result

    async def route(self, query: RouteQuery) -> RouteDecision:
        scores = await self.scores(query.message)
        rule = explicit_escalation(query.message)
        if rule is not None:
            return RouteDecision(
                route="escalate", confidence=1.0, reason=f"rule: {rule}", router=self.name
            )
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        (best, best_score), (_, second_score) = ranked[0], ranked[1]
        margin = best_score - second_score
        confidence = round(min(1.0, max(0.0, 0.5 + margin * 2)), 4)
        previous = query.previous
        other_wins = best != "escalate" and margin >= self.examples.follow_up_margin
        if previous is not None and query.follow_up and best != previous and not other_wins:
            return RouteDecision(
                route=previous,
                confidence=0.5,
                reason=f"follow-up kept with {previous}",
                router=self.name,
            )
        if best_score < self.examples.threshold:
            best = "escalate"
        return RouteDecision(
            route=best, confidence=confidence, reason=f"nearest: {best}", router=self.name
        )
