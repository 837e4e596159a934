"""The embedding router on messages that are not among its examples."""

import pytest

from core.domain import RouteQuery
from providers.router import EmbeddingRouter, explicit_escalation


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Je voudrais parler à un humain", "asks for a person"),
        ("Je veux être remboursée", "refund"),
        ("Mon paiement a échoué ce matin", "billing"),
        ("je souhaite resilier mon abonnement", "cancellation"),
        ("Je dépose une réclamation", "complaint"),
        ("I want to talk to a human please", "asks for a person"),
    ],
)
def test_explicit_requests_always_escalate(message: str, kind: str) -> None:
    assert explicit_escalation(message) == kind


@pytest.mark.parametrize(
    "message",
    [
        "Comment automatiser mes emails de bienvenue?",
        "Aide-moi à créer un reel viral sur Instagram",
        "Comment rédiger une accroche percutante pour mon post LinkedIn ?",
    ],
)
def test_marketing_questions_are_not_escalated_by_rules(message: str) -> None:
    assert explicit_escalation(message) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Comment automatiser mes emails de bienvenue?", "audrey"),
        ("Aide-moi à créer un reel viral sur Instagram", "carole"),
        ("Mes emails arrivent dans les spams de Gmail, que faire ?", "audrey"),
        ("Comment connecter mon formulaire Typeform à mon CRM avec Make ?", "audrey"),
        ("Trouve-moi 5 idées de posts pour la rentrée", "carole"),
        ("Quelle légende écrire sous ma photo de produit ?", "carole"),
        ("Je veux parler à quelqu'un de l'équipe", "escalate"),
        ("Quelle est la recette de la blanquette de veau ?", "escalate"),
    ],
)
async def test_routes_held_out_messages(
    router: EmbeddingRouter, message: str, expected: str
) -> None:
    decision = await router.route(RouteQuery(message))
    assert decision.route == expected, decision.reason
    assert decision.router == "embedding/e5-knn"
    assert set(decision.scores) == {"audrey", "carole", "escalate"}


async def test_short_follow_up_keeps_previous_specialist(router: EmbeddingRouter) -> None:
    alone = await router.route(RouteQuery("et pour le délai ?"))
    followed = await router.route(
        RouteQuery("et pour le délai ?", previous="audrey", follow_up=True)
    )
    assert followed.route == "audrey"
    assert followed.reason.startswith("follow-up") or alone.route == "audrey"


async def test_short_message_clearly_for_the_other_specialist_switches(
    router: EmbeddingRouter,
) -> None:
    decision = await router.route(
        RouteQuery("et un reel Instagram pour l'annoncer ?", previous="audrey", follow_up=True)
    )
    assert decision.route == "carole", decision.reason


async def test_follow_up_never_overrides_an_explicit_escalation(router: EmbeddingRouter) -> None:
    decision = await router.route(
        RouteQuery("je veux un remboursement", previous="carole", follow_up=True)
    )
    assert decision.route == "escalate"
    assert decision.reason == "rule: refund"
