"""Routers: decide which persona answers. The embedding router is the offline default and the
fallback of any LLM router."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from core.domain import ROUTES, Route, RouteDecision, RouteQuery
from core.metrics import PROVIDER_ERRORS, PROVIDER_FALLBACKS
from core.settings import ROOT, Settings
from core.text import fold
from prompts.router import ROUTER_CONTEXT, ROUTER_SYSTEM
from providers.chat import make_chat_model
from providers.embeddings import EmbeddingCache, Vector

EXAMPLES_PATH = ROOT / "prompts" / "router_examples.json"


class Router(Protocol):
    """Decides a route for a message given the conversation so far."""

    name: str

    async def warm(self) -> None: ...

    async def route(self, query: RouteQuery) -> RouteDecision: ...


# Requests that must reach a person whatever else the message says. Written on folded text
# (no accents, lower case) so "Réclamation" and "reclamation" match alike.
_ESCALATE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        (
            "asks for a person",
            r"\b(parler|discuter|echanger|joindre|contacter|passer?)\b.{0,30}"
            r"\b(humain|personne|quelqu.un|conseill\w*|vrai\w*|agent|equipe|responsable)\b"
            r"|\b(un|une|des|vrai|vraie|real|actual)\s+"
            r"(humain|humaine|human|person|personne reelle)\b"
            r"|\b(talk|speak)\s+to\s+(a|an|someone|somebody|the)\b"
            r"|\brappel(ez|er|le|lez)[- ]?moi\b|\bcall me\b|\bme rappeler\b",
        ),
        ("refund", r"\brembours\w*|\brefund\w*|\bchargeback\b"),
        (
            "billing",
            r"\b(ma|mes|votre|la|une|cette)\s+factur\w*|\bfacturation\b|\binvoice\w*|\bbilling\b"
            r"|\bprelev\w*|\bdebit(e|ee|es)\b"
            r"|\b(paiement|virement|reglement)\b.{0,20}"
            r"\b(refuse|echoue|rejete|bloque|passe pas)\w*"
            r"|\b(payment|charge)\b.{0,20}\b(failed|declined)\b|\bcarte\s+(bancaire\s+)?refusee\b",
        ),
        (
            "cancellation",
            r"\bresili\w*|\b(annuler|arreter|stopper)\s+(mon|mes|l|votre)\s*.?\s*"
            r"(abonnement|contrat|forfait)|\bcancel\s+my\b|\bunsubscribe me\b",
        ),
        (
            "complaint",
            r"\breclamation\w*|\bplainte\b|\binadmissible\b|\binacceptable\b"
            r"|\bscandal\w*|\barnaque\w*|\bcomplain\w*"
            r"|\bpas (du tout )?satisfait\w*|\bdecu(e|es|s)?\b",
        ),
        ("legal", r"\bavocat\w*|\bmise en demeure\b|\btribunal\b|\blawyer\b|\blawsuit\b"),
        (
            "account access",
            r"\bmot de passe\b|\bpassword\b"
            r"|\b(acces|acceder|connecter)\b.{0,20}\b(mon|a mon)\s+compte\b"
            r"|\bcompte\s+(bloque|suspendu|supprime|pirate)\b|\blocked out\b",
        ),
        ("distress", r"\b(suicid\w*|me tuer|en finir|detresse|harcel\w*)\b"),
    )
)


def explicit_escalation(message: str) -> str | None:
    """The kind of human-only request `message` makes, if any."""
    folded = fold(message)
    for label, pattern in _ESCALATE_RULES:
        if pattern.search(folded):
            return label
    return None


@dataclass(frozen=True)
class RouterExamples:
    """Labelled utterances and the policy numbers the embedding router reads."""

    examples: dict[Route, list[str]]
    threshold: float = 0.0
    top_k: int = 3
    follow_up_margin: float = 0.05

    @classmethod
    def load(cls, path: Path = EXAMPLES_PATH) -> RouterExamples:
        """The hand-written examples plus those `make calibrate` fitted, and the policy."""
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
    """Scale rows (or a vector) to unit length."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    result: Vector = (x / np.where(norm == 0, 1.0, norm)).astype(np.float32)
    return result


class EmbeddingRouter:
    """Nearest-neighbour router over labelled example utterances.

    A route's score is half the mean similarity of its `top_k` closest examples and half its
    centroid's. Explicit human-only requests always escalate; a best score under `threshold`
    escalates as out of scope; a short follow-up stays with the previous specialist unless the
    other one clearly wins.
    """

    name = "embedding/e5-knn"

    def __init__(self, embeddings: EmbeddingCache, examples: RouterExamples):
        self._embeddings = embeddings
        self.examples = examples
        self._matrix: Vector | None = None
        self._mean: Vector | None = None
        self._labels: list[Route] = []
        self._centroids: dict[Route, Vector] = {}

    async def warm(self) -> None:
        """Embed the examples (once, at start-up) and centre them.

        e5 similarities crowd into 0.8-0.9 because all its embeddings share a large common
        component; subtracting the examples' mean spreads them out so routes separate better.
        """
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
        """Each route's score for `message`."""
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
        decision = decide(await self.scores(query.message), query, self.examples)
        return decision.model_copy(update={"router": self.name})


def decide(scores: dict[Route, float], query: RouteQuery, policy: RouterExamples) -> RouteDecision:
    """The embedding router's policy on precomputed scores (pure, so calibration reuses it).

    Explicit human-only requests escalate; a follow-up stays with the previous specialist
    unless the other one clearly wins; a best score under the threshold escalates
    as out of scope; otherwise the best route wins.
    """
    rounded = {k: round(v, 4) for k, v in scores.items()}
    rule = explicit_escalation(query.message)
    if rule is not None:
        return RouteDecision(
            route="escalate", confidence=1.0, reason=f"rule: {rule}", scores=rounded
        )
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, best_score), (_, second_score) = ranked[0], ranked[1]
    margin = best_score - second_score
    confidence = round(min(1.0, max(0.0, 0.5 + margin * 2)), 4)
    previous = query.previous
    if previous is not None and query.follow_up and best != previous:
        other_wins = best != "escalate" and margin >= policy.follow_up_margin
        if not other_wins:
            return RouteDecision(
                route=previous,
                confidence=0.5,
                reason=f"follow-up: short message kept with {previous} "
                f"(best {best} {best_score:.3f}, margin {margin:.3f})",
                scores=rounded,
            )
    if best_score < policy.threshold:
        return RouteDecision(
            route="escalate",
            confidence=confidence,
            reason=f"out of scope: best {best} {best_score:.3f} < {policy.threshold}",
            scores=rounded,
        )
    return RouteDecision(
        route=best,
        confidence=confidence,
        reason=f"nearest examples: {best} {best_score:.3f}, margin {margin:.3f}",
        scores=rounded,
    )


class RouteChoice(BaseModel):
    """What the LLM router must answer (structured output)."""

    route: Route
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = Field(description="Une phrase courte en français")


class LLMRouter:
    """Routes with a chat model's structured output; the embedding router is its fallback.

    The call is tagged `nostream` and its output never reaches the token stream. On error or
    timeout the embedding router decides, and the decision says so. Explicit human-only requests
    escalate before any model is asked, as with the embedding router.
    """

    def __init__(self, name: str, model: BaseChatModel, fallback: EmbeddingRouter, timeout: float):
        self.name = name
        self._structured = model.with_structured_output(RouteChoice, method="json_schema")
        self.fallback = fallback
        self._timeout = timeout

    async def warm(self) -> None:
        await self.fallback.warm()

    async def route(self, query: RouteQuery) -> RouteDecision:
        rule = explicit_escalation(query.message)
        if rule is not None:
            return RouteDecision(
                route="escalate", confidence=1.0, reason=f"rule: {rule}", router=self.name
            )
        lines = [
            f"{'assistant (' + str(m.name) + ')' if isinstance(m, AIMessage) else 'user'}: "
            f"{m.text[:300]}"
            for m in query.history[-4:]
            if isinstance(m, HumanMessage | AIMessage)
        ]
        prompt = [
            SystemMessage(ROUTER_SYSTEM),
            HumanMessage(
                ROUTER_CONTEXT.format(
                    previous=query.previous or "aucune",
                    history="\n".join(lines) or "(début de conversation)",
                    message=query.message,
                )
            ),
        ]
        try:
            async with asyncio.timeout(self._timeout):
                choice = await self._structured.ainvoke(
                    prompt, config={"tags": ["nostream", "router"], "run_name": "route_llm"}
                )
            if not isinstance(choice, RouteChoice):
                choice = RouteChoice.model_validate(choice)
        except Exception as exc:
            PROVIDER_ERRORS.labels(role="router", provider=self.name).inc()
            PROVIDER_FALLBACKS.labels(role="router").inc()
            decision = await self.fallback.route(query)
            problem = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            return decision.model_copy(
                update={
                    "reason": f"LLM router failed ({problem}), embedding router: {decision.reason}",
                    "router": f"{self.name} -> {decision.router}",
                }
            )
        return RouteDecision(
            route=choice.route,
            confidence=choice.confidence,
            reason=choice.reason,
            router=self.name,
        )


def make_router(
    name: str, embeddings: EmbeddingCache, settings: Settings | None = None
) -> EmbeddingRouter | LLMRouter:
    """Build the router named `provider/model`.

    `embeddings` is always the local e5 model: the embedding router, and so the LLM router's
    fallback, keeps working when every remote service is down.
    """
    provider, _, model = name.partition("/")
    embedding_router = EmbeddingRouter(embeddings, RouterExamples.load())
    match provider:
        case "embedding":
            return embedding_router
        case "llm":
            if settings is None:
                raise ValueError("the LLM router needs settings")
            chat = make_chat_model(
                f"openrouter/{model}", settings, timeout=settings.router_timeout_seconds
            )
            return LLMRouter(
                f"llm/{model}", chat, embedding_router, settings.router_timeout_seconds
            )
        case _:
            raise ValueError(f"Unknown router {name!r}")
