"""The routers compared by the eval: the v1 keyword baseline and the project's own."""

from __future__ import annotations

from core.domain import RouteDecision, RouteQuery
from core.text import fold

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
