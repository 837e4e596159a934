"""The conversation rules the nodes share: the latest question, who answered last, follow-ups.

Each rule has this one owner: the router, the retriever and the evals all read them from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from core.domain import RouteQuery, Specialist, as_specialist
from core.text import words

# A message this short (in words) may be a follow-up of the previous turn ("et pour le délai ?").
FOLLOW_UP_MAX_WORDS = 8


def latest_user_message(messages: Sequence[AnyMessage]) -> str:
    """The text of the last human message (the one this turn answers)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def previous_specialist(messages: Sequence[AnyMessage]) -> Specialist | None:
    """The last specialist who answered in this conversation (escalations do not count)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and (specialist := as_specialist(message.name)):
            return specialist
    return None


def is_follow_up(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> bool:
    """A short message after an earlier question: it leans on that question's context."""
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    return len(humans) > 1 and len(words(humans[-1].text)) <= max_words


def route_query(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> RouteQuery:
    """What the router decides on for the conversation's latest message."""
    return RouteQuery(
        message=latest_user_message(messages),
        previous=previous_specialist(messages),
        follow_up=is_follow_up(messages, max_words),
        history=messages[:-1],
    )


def search_text(messages: Sequence[AnyMessage], max_words: int = FOLLOW_UP_MAX_WORDS) -> str:
    """What to search for: the question, plus the previous question when it is a follow-up.

    "Et combien d'emails ?" means nothing alone; glued to "Comment automatiser mes emails de
    bienvenue ?" it finds the right passage.
    """
    humans = [m.text for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        return ""
    if is_follow_up(messages, max_words):
        return f"{humans[-2]} {humans[-1]}"
    return humans[-1]
