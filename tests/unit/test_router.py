"""The classifier router: its explicit rules, its policy, its weights file, and its decisions on
messages it was not fitted on."""

from pathlib import Path

import numpy as np
import pytest

from core.domain import Reply, Route, RouteQuery
from providers.route_classifier import RouteClassifier, RoutePolicy, char_ngrams, ngram_features
from providers.router import ClassifierRouter, choose, decide, explicit_escalation


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("Je voudrais parler à un humain", "asks for a person"),
        ("Je veux être remboursée", "refund"),
        ("je veux un remboursement", "refund"),
        ("Mon paiement a échoué ce matin", "billing"),
        ("on m'a prélevé deux fois ce mois-ci", "billing"),
        ("Where can I download my invoices?", "billing"),
        ("je souhaite resilier mon abonnement", "cancellation"),
        ("je veux arrêter l'accompagnement à la fin du mois", "cancellation"),
        ("Je dépose une réclamation", "complaint"),
        ("I want to talk to a human please", "asks for a person"),
        ("passez moi un responsable", "asks for a person"),
        ("j'ai oublié mon mot de passe", "account access"),
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
        # The words of a human-only request inside a marketing question.
        "Quand je rembourse une commande sur Shopify, le client doit sortir du segment VIP",
        "Chaque fois qu'une facture est marquée payée, le client doit recevoir un mail",
        "Les mails de réinitialisation de mot de passe de ma boutique arrivent en spam",
        "Comment j'annule un zap programmé sans le supprimer ?",
    ],
)
def test_marketing_questions_are_not_escalated_by_rules(message: str) -> None:
    assert explicit_escalation(message) is None


POLICY = RoutePolicy(
    escalate_threshold=0.4, follow_up_escalate_shift=1.0, follow_up_boost=1.0, answer_boost=1.0
)


def probs(audrey: float, carole: float, escalate: float) -> dict[Route, float]:
    return {"audrey": audrey, "carole": carole, "escalate": escalate}


def test_an_unsure_specialist_question_goes_to_the_likelier_specialist() -> None:
    decision = decide(probs(0.34, 0.31, 0.35), RouteQuery("une question"), POLICY)
    assert decision.route == "audrey"
    assert decide(probs(0.2, 0.35, 0.45), RouteQuery("une question"), POLICY).route == "escalate"


def test_a_rule_escalates_whatever_the_probabilities() -> None:
    query = RouteQuery("je veux un remboursement", previous="carole", reply="acknowledgement")
    decision = decide(probs(0.9, 0.05, 0.05), query, POLICY)
    assert (decision.route, decision.reason) == ("escalate", "rule: refund")


def test_a_reply_stays_with_the_specialist_who_answered() -> None:
    replies: tuple[Reply, ...] = ("acknowledgement", "yes_no", "edit")
    for reply in replies:
        query = RouteQuery("plus court", previous="carole", follow_up=True, reply=reply)
        decision = decide(probs(0.1, 0.1, 0.8), query, POLICY)
        assert decision.route == "carole", decision.reason
    # Without a previous specialist there is nobody to stay with.
    assert decide(probs(0.1, 0.1, 0.8), RouteQuery("oui", reply="yes_no"), POLICY).route == (
        "escalate"
    )


def test_a_complaint_about_the_answer_escalates_whatever_the_probabilities() -> None:
    query = RouteQuery("c'est nul", previous="audrey", follow_up=True, reply="complaint")
    decision = decide(probs(0.9, 0.05, 0.05), query, POLICY)
    assert decision.route == "escalate"
    assert decision.reason == "reply (complaint) to audrey's answer"
    assert choose(probs(0.9, 0.05, 0.05), query, POLICY).route == "escalate"


def test_a_conversation_moves_the_prior_away_from_a_person() -> None:
    p = probs(0.15, 0.45, 0.40)
    alone = decide(p, RouteQuery("et ça coûte combien ?"), POLICY)
    assert alone.route == "escalate"
    # A short follow-up while Audrey answers: escalate -1, audrey +1; Carole is still likelier.
    short = decide(
        p, RouteQuery("et ça coûte combien ?", previous="audrey", follow_up=True), POLICY
    )
    assert short.route == "carole", short.reason
    assert "escalate -1, audrey +1" in short.reason
    # The answer to her own question: audrey +2 in all.
    answer = RouteQuery("calendly", previous="audrey", follow_up=True, reply="answer")
    assert decide(p, answer, POLICY).route == "audrey"
    # A long message in a conversation gets only the conversation amounts (0 here).
    long_message = RouteQuery("une longue question sur autre chose", previous="audrey")
    assert decide(p, long_message, POLICY).route == "escalate"


def test_choose_and_decide_agree() -> None:
    for p in (probs(0.2, 0.5, 0.3), probs(0.1, 0.1, 0.8), probs(0.6, 0.1, 0.3)):
        for query in (RouteQuery("x"), RouteQuery("x", previous="carole", follow_up=True)):
            assert choose(p, query, POLICY).route == decide(p, query, POLICY).route


def test_char_ngrams_read_folded_words() -> None:
    assert char_ngrams("Été") == char_ngrams("ete")
    assert " et" in char_ngrams("été")
    assert "ete " in char_ngrams("été")
    index, values = ngram_features("été été", {" et": 0, "te ": 1, "zz": 2}, np.ones(3, "f4"))
    assert sorted(index.tolist()) == [0, 1]
    assert np.isclose(np.linalg.norm(values), 1.0)


def test_the_weights_file_round_trips(tmp_path: Path) -> None:
    shipped = RouteClassifier.load()
    shipped.save(tmp_path / "w.npz", tmp_path / "w.json")
    again = RouteClassifier.load(tmp_path / "w.npz", tmp_path / "w.json")
    vector = np.random.default_rng(3).normal(size=shipped.dimensions).astype(np.float32)
    assert again.policy == shipped.policy
    assert np.allclose(
        again.logits("tunnel de vente", vector), shipped.logits("tunnel de vente", vector)
    )
    p = shipped.probabilities("tunnel de vente", vector)
    assert set(p) == {"audrey", "carole", "escalate"}
    assert np.isclose(sum(p.values()), 1.0)


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
    router: ClassifierRouter, message: str, expected: str
) -> None:
    decision = await router.route(RouteQuery(message))
    assert decision.route == expected, decision.reason
    assert decision.router == "embedding/e5-logreg"
    if decision.reason.startswith("rule:"):
        # An explicit request for a person is settled before the classifier reads it.
        assert decision.scores == {}
    else:
        assert set(decision.scores) == {"audrey", "carole", "escalate"}
        assert np.isclose(sum(decision.scores.values()), 1.0, atol=1e-3)


async def test_short_follow_up_keeps_previous_specialist(router: ClassifierRouter) -> None:
    followed = await router.route(
        RouteQuery(
            "et pour le délai ?",
            previous="audrey",
            follow_up=True,
            in_context="Comment automatiser mes emails de bienvenue ? et pour le délai ?",
        )
    )
    assert followed.route == "audrey", followed.reason


async def test_short_message_clearly_for_the_other_specialist_switches(
    router: ClassifierRouter,
) -> None:
    decision = await router.route(
        RouteQuery("et un reel Instagram pour l'annoncer ?", previous="audrey", follow_up=True)
    )
    assert decision.route == "carole", decision.reason


async def test_follow_up_never_overrides_an_explicit_escalation(router: ClassifierRouter) -> None:
    decision = await router.route(
        RouteQuery("je veux un remboursement", previous="carole", follow_up=True)
    )
    assert decision.route == "escalate"
    assert decision.reason == "rule: refund"
