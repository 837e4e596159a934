"""What the service says on its own while the team has a conversation (no LLM, no routing)."""

from __future__ import annotations

HELD_ACKNOWLEDGEMENT = (
    "Message bien reçu : je le transmets à l'équipe, qui vous répondra ici dès que possible."
)
"""The one short answer to each message sent while the conversation waits for a person."""

HELD_REASON = "La conversation attend la réponse d'un membre de l'équipe."
"""The `route` event's reason for those messages (the router was not asked)."""

RELEASED_NOTICE = (
    "L'équipe vous a répondu et vous rend la main : Audrey et Carole reprennent la conversation."
)
"""Written in the conversation when the team gives it back to the bot."""
