"""The conversation rules have one owner: the router and the retriever read the same ones."""

from __future__ import annotations

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
