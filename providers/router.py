"""Routers: decide which persona answers. The classifier router (e5 embedding + character
n-grams) is the offline default and the fallback of any LLM router."""

from __future__ import annotations

import asyncio
import functools
import math
import re
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from core.domain import ROUTES, Route, RouteDecision, RouteQuery
from core.metrics import PROVIDER_ERRORS, PROVIDER_FALLBACKS
from core.settings import Settings
from core.text import fold
from prompts.router import ROUTER_CONTEXT, ROUTER_SYSTEM
from providers.chat import make_chat_model, request_payload
from providers.embeddings import EmbeddingCache
from providers.route_classifier import RouteClassifier, RoutePolicy, softmax


class Router(Protocol):
    """Decides a route for a message given the conversation so far."""

    name: str

    async def warm(self) -> None: ...

    async def route(self, query: RouteQuery) -> RouteDecision: ...


# Requests that must reach a person whatever else the message says. Written on folded text
# (no accents, lower case) so "Réclamation" and "reclamation" match alike. They match a request
# about the user's own account, money, well-being or relationship with the agency, not the same
# words inside a marketing question (a shop refunding its own customers, invoices a business
# sends, a password-reset email landing in spam, a law firm asking about its posts): those are
# the classifier's to route.
_ESCALATE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(pattern))
    for label, pattern in (
        (
            "asks for a person",
            r"\b(parler|discuter|echanger|joindre|contacter|passer?|passez)\b.{0,30}"
            r"\b(humain|personne|quelqu.un|conseill\w*|vrai\w*|agent|equipe|responsable)\b"
            r"|\b(un|une|des|vrai|vraie|real|actual)\s+"
            r"(humain|humaine|human|person|personne reelle)\b"
            r"|\b(talk|speak)\s+(to|with)\s+(a|an|someone|somebody|the)\b"
            r"|\brappel(ez|er|le|lez)[- ]?moi\b|\bcall me\b|\bme rappel\w*"
            r"|\bpassez[- ]moi\b",
        ),
        (
            "refund",
            r"\brembourse[rz]?[- ]moi\b|\bme rembourse\w*|\b(etre|soit|sois|suis) rembourse\w*"
            r"|\b(un|mon|le|votre|ce|du|au) remboursement\b(?!\s+(de|des|a|aux)\s+(mes|ses|nos)\s)"
            r"|\brefund\w*|\bchargeback\b|\bmoney back\b",
        ),
        (
            "billing",
            r"\b(ma|mes|votre|vos|cette|derniere)\s+factur\w*(?!\w)(?!\s+(client|de mes client))"
            r"|\b(ma|la|votre|erreur de|probleme de)\s+facturation\b"
            r"|\b(my|your|our|last|the)\s+(invoice|receipt|bill)s?\b|\bbilling\b"
            r"|\b(j.ai ete|on m.a|vous m.avez|m.avez|suis|ete)\s+(preleve|debite|facture)\w*"
            r"|\b(preleve|debite|facture)\w*\s+(deux|2|trois|3) fois\b"
            r"|\bdouble (prelevement|paiement|debit|facturation)\b"
            r"|\b(paiement|virement|reglement)\b.{0,20}"
            r"\b(refuse|echoue|rejete|bloque|passe pas)\w*"
            r"|\b(payment|charge)\b.{0,20}\b(failed|declined)\b|\bcharged\s+twice\b"
            r"|\bcarte\s+(bancaire\s+)?refusee\b",
        ),
        (
            "quote",
            r"\b(je voudrais|j.aimerais|je souhaite|je veux|besoin d|demander|m.envoyer|"
            r"recevoir|avoir)\s+(un|une proposition de|votre) (devis|quote)\b"
            r"|\b(can i|could i) (get|have) a quote\b",
        ),
        (
            "cancellation",
            r"\bresili\w*|\b(annuler|arreter|stopper|suspendre)\s+(mon|mes|l|votre|notre)\s*.?\s*"
            r"(abonnement|contrat|forfait|accompagnement|formule)"
            r"|\bmettre fin (a|au)\s+(mon |notre |l.|votre )?(contrat|abonnement|accompagnement)"
            r"|\bcancel\s+my\b|\bunsubscribe me\b",
        ),
        (
            "complaint",
            r"\breclamation\w*|\b(porter|deposer|faire|une|ma)\s+plainte\b|\binadmissible\b"
            r"|\binacceptable\b"
            r"|\bscandal\w*|\barnaque\w*|\bcomplain\w*"
            r"|\bpas (du tout )?satisfait\w*|\bdecu(e|es|s)?\b|\bdecevant\w*|\bmecontent\w*"
            r"|\bj.en ai (vraiment )?marre\b|\bras le bol\b"
            r"|\b(reponse|reponses|service|chatbot|bot) (est |sont )?(vraiment )?(nul|nulle|nuls"
            r"|inutile\w*)\b|\bnul(le)? comme reponse|\b(t.es|tu es|vous etes) (vraiment )?"
            r"(nul|nulle|nuls|inutile\w*)\b|\bunprofessional\b|\bdisappointed\b",
        ),
        (
            "legal",
            r"\b(mon|ma|un|une|notre|votre|son|par un|d.un) avocat\w*|\bmise en demeure\b"
            r"|\btribunal\b|\blawyer\b|\blawsuit\b|\blegally\b|\blegalement\b",
        ),
        (
            "account access",
            r"\b(mon|mes|votre|my)\s+(mot de passe|password|identifiants?|login)\b"
            r"|\b(acces|acceder|connecter|connecte)\b.{0,20}\b(mon|a mon)\s+(compte|espace)\b"
            r"|\bcompte\s+(est\s+)?(bloque|suspendu|supprime|pirate|desactive)\b"
            r"|\blocked out\b|\b(can.?t|cannot|unable to)\s+(log|sign)\s?in(to)?\b",
        ),
        (
            "distress",
            r"\b(suicid\w*|me tuer|en finir|detresse|harcel\w*|burn.?out)\b"
            r"|\bje (suis|me sens) (completement |tellement |vraiment |totalement )?"
            r"(epuise\w*|a bout|au bout du rouleau|deprime\w*)"
            r"|\bje n.en peux plus\b",
        ),
    )
)


@functools.lru_cache(maxsize=4096)
def explicit_escalation(message: str) -> str | None:
    """The kind of human-only request `message` makes, if any."""
    folded = fold(message)
    for label, pattern in _ESCALATE_RULES:
        if pattern.search(folded):
            return label
    return None


class ClassifierRouter:
    """A calibrated classifier over the e5 embedding and character n-grams of the message.

    Explicit human-only requests always escalate. A reply to the previous specialist's answer
    (thanks, yes/no, an edit of it) stays with that specialist. Otherwise the classifier's
    probabilities decide, leaning towards the specialist already answering (`decide`); a
    specialist question the model is unsure about goes to the likelier specialist, and only a
    high escalate probability reaches a person.
    """

    name = "embedding/e5-logreg"

    def __init__(self, embeddings: EmbeddingCache, classifier: RouteClassifier | None = None):
        self._embeddings = embeddings
        self._classifier = classifier

    @property
    def classifier(self) -> RouteClassifier:
        if self._classifier is None:
            self._classifier = RouteClassifier.load()
        return self._classifier

    async def warm(self) -> None:
        """Load the weights and run the embedding model once, so the first user does not wait."""
        classifier = self.classifier
        if classifier.dimensions != self._embeddings.dimensions:
            raise ValueError(
                f"the router's classifier reads {classifier.dimensions}-d embeddings, "
                f"{self._embeddings.name} gives {self._embeddings.dimensions}"
            )
        await self._embeddings.query("Bonjour")

    async def probabilities(self, query: RouteQuery) -> dict[Route, float]:
        """P(route) for the message; a short follow-up is also read with its context."""
        classifier = self.classifier
        weight = classifier.policy.context_weight
        if query.in_context and weight > 0:
            # Both texts in one engine call (the embedder batches concurrent queries).
            text = query.in_context
            vector, context_vector = await asyncio.gather(
                self._embeddings.query(query.message), self._embeddings.query(text)
            )
            logits = (1.0 - weight) * classifier.logits(
                query.message, vector
            ) + weight * classifier.logits(text, context_vector)
        else:
            logits = classifier.logits(query.message, await self._embeddings.query(query.message))
        return softmax(dict(zip(ROUTES, logits.tolist(), strict=True)))

    async def route(self, query: RouteQuery) -> RouteDecision:
        decision = settled(query) or decide(
            await self.probabilities(query), query, self.classifier.policy
        )
        return decision.model_copy(update={"router": self.name})


def settled(query: RouteQuery) -> RouteDecision | None:
    """The decision when no model needs to read the message: an explicit human-only request
    and a complaint about the answer ("c'est nul") escalate, and a reply to the previous
    specialist ("merci", "oui", "plus court") stays with her. Both routers check it first;
    `choose` applies the same rules to probabilities."""
    rule = _settled_route(query)
    if rule is None:
        return None
    route, reason = rule
    return RouteDecision(route=route, confidence=1.0, reason=reason)


def _settled_route(query: RouteQuery) -> tuple[Route, str] | None:
    """`settled` as (route, reason), without building a decision: the fit runs `choose` over
    its whole grid."""
    rule = explicit_escalation(query.message)
    if rule is not None:
        return "escalate", f"rule: {rule}"
    if query.previous is not None and query.reply == "complaint":
        return "escalate", f"reply (complaint) to {query.previous}'s answer"
    if query.previous is not None and query.reply in _STAYS_WITH_PREVIOUS:
        return query.previous, f"reply ({query.reply}) to {query.previous}'s answer"
    return None


# Replies that carry no topic of their own: they belong to whoever wrote the answer.
_STAYS_WITH_PREVIOUS = ("acknowledgement", "yes_no", "edit")


@dataclass(frozen=True)
class Choice:
    """The policy's verdict before it is worded: the route, the probabilities it read (after
    the conversation's shifts) and why."""

    route: Route
    adjusted: dict[Route, float]
    escalate_shift: float = 0.0
    boost: float = 0.0


def choose(probabilities: dict[Route, float], query: RouteQuery, policy: RoutePolicy) -> Choice:
    """The classifier router's policy on precomputed probabilities (pure and cheap: the fit
    runs it over its whole grid).

    Explicit human-only requests and complaints about the answer escalate; a reply to the
    previous specialist stays with her; otherwise, in a conversation, the prior moves away from
    a person and towards the specialist answering (`RoutePolicy`), a person is chosen when the
    escalate probability reaches the threshold, and the likelier specialist otherwise.
    """
    rule = _settled_route(query)
    if rule is not None:
        return Choice(rule[0], probabilities)
    previous = query.previous
    adjusted = probabilities
    escalate_shift = boost = 0.0
    if previous is not None:
        escalate_shift = policy.conversation_escalate_shift
        boost = policy.conversation_boost
        if query.follow_up:
            escalate_shift += policy.follow_up_escalate_shift
            boost += policy.follow_up_boost
        if query.reply == "answer":
            boost += policy.answer_boost
        if escalate_shift or boost:
            logits = {r: math.log(max(p, 1e-9)) for r, p in probabilities.items()}
            logits["escalate"] -= escalate_shift
            logits[previous] += boost
            adjusted = softmax(logits)
    if adjusted["escalate"] >= policy.escalate_threshold:
        route: Route = "escalate"
    else:
        route = "audrey" if adjusted["audrey"] >= adjusted["carole"] else "carole"
    return Choice(route, adjusted, escalate_shift=escalate_shift, boost=boost)


def decide(
    probabilities: dict[Route, float], query: RouteQuery, policy: RoutePolicy
) -> RouteDecision:
    """`choose`, worded as the decision the graph records and streams in the `route` event."""
    scores = {route: round(p, 4) for route, p in probabilities.items()}
    early = settled(query)  # the same rules as `choose`, worded
    if early is not None:
        return early.model_copy(update={"scores": scores})
    choice = choose(probabilities, query, policy)
    summary = ", ".join(f"{r} {choice.adjusted[r]:.2f}" for r in ROUTES)
    if choice.escalate_shift or choice.boost:
        if query.reply == "answer":
            kind = f"follow-up answering {query.previous}'s question"
        elif query.follow_up:
            kind = "short follow-up"
        else:
            kind = f"in conversation with {query.previous}"
        summary += (
            f" ({kind}: escalate -{choice.escalate_shift:g}, {query.previous} +{choice.boost:g})"
        )
    if choice.route == "escalate":
        summary = f"escalate >= {policy.escalate_threshold:g}: {summary}"
    return RouteDecision(
        route=choice.route,
        confidence=round(choice.adjusted[choice.route], 4),
        reason=f"classifier: {summary}",
        scores=scores,
    )


class RouteChoice(BaseModel):
    """What the LLM router must answer (structured output)."""

    route: Route
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str = Field(description="Une phrase courte en français")


# The structured-output request, built once (the OpenAI SDK would rebuild a schema given the
# class on every call: ~7% of the server's event loop under load, bench/load.py).
ROUTE_CHOICE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "RouteChoice", "schema": RouteChoice.model_json_schema()},
}


class LLMRouter:
    """Routes with a chat model's structured output; the classifier router is its fallback.

    The request is built by `ChatOpenAI` (message conversion, model settings) and sent with the
    OpenAI SDK client it configured (base URL, key, retries), as the generator does: this call
    is on every turn's critical path, and LangChain's runnable layers around it (callbacks,
    output parsers) cost about as much CPU as the HTTP call itself (`bench/ttft_ideal.py`). Its
    output never reaches the token stream. On error or timeout the classifier router decides,
    and the decision says so. Explicit human-only requests escalate, and replies to the
    previous specialist stay with her, before any model is asked, as with the classifier router.
    """

    def __init__(self, name: str, model: ChatOpenAI, fallback: ClassifierRouter, timeout: float):
        self.name = name
        self._model = model
        self.fallback = fallback
        self._timeout = timeout

    async def warm(self) -> None:
        await self.fallback.warm()

    async def route(self, query: RouteQuery) -> RouteDecision:
        decision = settled(query)
        if decision is not None:
            # "merci", "oui", "plus court": nothing for a model to decide, no call to pay for.
            return decision.model_copy(update={"router": self.name})
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
                choice = await self._ask(prompt)
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

    async def _ask(self, prompt: list[BaseMessage]) -> RouteChoice:
        payload = request_payload(self._model, prompt)
        # In the body as given, like the messages (`request_payload`): no walk of the schema.
        payload["extra_body"]["response_format"] = ROUTE_CHOICE_FORMAT
        completion = await self._model.root_async_client.chat.completions.create(**payload)
        message = completion.choices[0].message if completion.choices else None
        if message is None or not message.content:
            refusal = message.refusal if message is not None else None
            raise ValueError(f"no structured answer ({refusal or 'empty'})")
        return RouteChoice.model_validate_json(message.content)


def make_router(
    name: str, embeddings: EmbeddingCache, settings: Settings | None = None
) -> ClassifierRouter | LLMRouter:
    """Build the router named `provider/model`.

    `embeddings` is always the local e5 model: the classifier router, and so the LLM router's
    fallback, keeps working when every remote service is down.
    """
    provider, _, model = name.partition("/")
    embedding_router = ClassifierRouter(embeddings)
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
