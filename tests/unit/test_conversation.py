"""The conversation rules have one owner: the router and the retriever read the same ones."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from graph.conversation import previous_specialist, route_query, search_text

CONVERSATION: list[AnyMessage] = [
    HumanMessage("Comment automatiser mes emails de bienvenue ?"),
    AIMessage("Voici une séquence...", name="audrey"),
    HumanMessage("Merci, je veux maintenant être remboursée"),
    AIMessage("Une personne de l'équipe va vous répondre.", name="escalate"),
    HumanMessage("et pour le délai ?"),
]


def test_the_previous_specialist_skips_escalations() -> None:
    assert previous_specialist(CONVERSATION) == "audrey"
    assert previous_specialist(CONVERSATION[:1]) is None


def test_one_threshold_decides_follow_ups_for_routing_and_search() -> None:
    query = route_query(CONVERSATION, max_words=8)
    assert query.follow_up is True
    assert query.previous == "audrey"
    assert query.message == "et pour le délai ?"
    assert search_text(CONVERSATION, max_words=8).endswith("remboursée et pour le délai ?")
    strict = route_query(CONVERSATION, max_words=3)
    assert strict.follow_up is False
    assert search_text(CONVERSATION, max_words=3) == "et pour le délai ?"


def test_a_first_message_is_never_a_follow_up() -> None:
    assert route_query(CONVERSATION[:1]).follow_up is False
    assert search_text(CONVERSATION[:1]) == CONVERSATION[0].text


def after(answer: str, message: str, agent: str = "carole") -> list[AnyMessage]:
    return [HumanMessage("Une question"), AIMessage(answer, name=agent), HumanMessage(message)]


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("merci !!", "acknowledgement"),
        ("ok je teste ça ce soir", "acknowledgement"),
        ("🙏🙏", "acknowledgement"),
        ("thanks, that worked", "acknowledgement"),
        ("oui", "yes_no"),
        ("non c'est bon", "yes_no"),
        ("vas-y", "yes_no"),
        ("plus court", "edit"),
        ("5 de plus", "edit"),
        ("en anglais", "edit"),
        ("tutoie plutôt", "edit"),
        ("d'autres ?", "edit"),
        ("c'est bien mais tu peux me la refaire en plus long avec le prix à la fin", "edit"),
        ("c'est nul votre truc", "complaint"),
        ("ça sert à rien", "complaint"),
        ("tu comprends rien", "complaint"),
        ("n'importe quoi", "complaint"),
        ("this is useless", "complaint"),
    ],
)
def test_replies_to_the_answer_are_recognised(message: str, kind: str) -> None:
    query = route_query(after("Voici une proposition.", message))
    assert query.reply == kind
    assert query.previous == "carole"


@pytest.mark.parametrize(
    "message",
    [
        "et pour insta ?",
        "merci. et sinon comment on fait un test A/B ?",
        "super. il me faudrait aussi 3 posts pour l'annoncer",
        "ok mais je n'arrive plus à me connecter à mon espace",
        "un exemple de séquence de bienvenue pour une boutique de thé en ligne ?",
        # The user's own work, or a conclusion, not a verdict on the answer.
        "mes posts c'est nul, je fais comment ?",
        "ça sert à rien de poster le dimanche alors",
        "nulle part ailleurs",
    ],
)
def test_a_new_request_is_not_a_reply(message: str) -> None:
    assert route_query(after("Voici une proposition.", message)).reply is None


def test_an_answer_to_the_specialists_question() -> None:
    asked = route_query(after("Vous utilisez quel outil ?", "calendly", agent="audrey"))
    assert (asked.reply, asked.previous) == ("answer", "audrey")
    assert route_query(after("Voici la marche à suivre.", "calendly")).reply is None


def test_no_reply_after_an_escalation_or_on_a_first_message() -> None:
    escalated: list[AnyMessage] = [
        HumanMessage("Comment faire un reel ?"),
        AIMessage("Voici.", name="carole"),
        HumanMessage("je veux être remboursée"),
        AIMessage("Une personne vous répond.", name="escalate"),
        HumanMessage("ok merci"),
    ]
    assert route_query(escalated).reply is None
    assert route_query([HumanMessage("merci")]).reply is None


def test_a_short_follow_up_is_read_with_its_context() -> None:
    query = route_query(CONVERSATION, max_words=8)
    assert query.in_context == search_text(CONVERSATION, max_words=8)
    assert query.text_in_context == query.in_context
    first = route_query(CONVERSATION[:1])
    assert (first.in_context, first.text_in_context) == ("", CONVERSATION[0].text)
