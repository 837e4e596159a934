"""Reading a conversation's messages: the latest question, who answered before, follow-ups."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage

from graph.state import Specialist
from graph.text import words


def latest_user_message(messages: Sequence[AnyMessage]) -> str:
    """The text of the last human message (the one this turn answers)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message.text
    return ""


def previous_route(messages: Sequence[AnyMessage]) -> Specialist | None:
    """The last specialist who answered in this conversation (escalations do not count)."""
    for message in reversed(messages):
        if isinstance(message, AIMessage) and message.name in ("audrey", "carole"):
            return "audrey" if message.name == "audrey" else "carole"
    return None


def search_text(messages: Sequence[AnyMessage], follow_up_max_words: int) -> str:
    """What to search for: the question, plus the previous question when it is a short follow-up.

    "Et combien d'emails ?" means nothing alone; glued to "Comment automatiser mes emails de
    bienvenue ?" it finds the right passage.
    """
    humans = [m.text for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        return ""
    current = humans[-1]
    if len(humans) > 1 and len(words(current)) <= follow_up_max_words:
        return f"{humans[-2]} {current}"
    return current
