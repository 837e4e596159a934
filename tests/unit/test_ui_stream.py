"""The AI SDK encoding of the turn events, the AI SDK's request body, and the KPI rules.
(The encoding is also checked end to end with the `ai` package's own client:
tests/integration/test_ai_sdk.py.)"""

from __future__ import annotations

from api.schemas import ChatRequest
from api.ui_stream import UIMessageEncoder
from core.domain import Usage
from core.kpis import KpiCounts, evaluate
from turns.events import (
    EndEvent,
    ErrorEvent,
    MetadataEvent,
    RouteEvent,
    Source,
    SourcesEvent,
    TokenEvent,
    TurnEvent,
)

SOURCE = Source(
    number=1,
    id=7,
    title="Séquence de bienvenue",
    section="Délais",
    source="audrey/sequence-email-bienvenue.md",
    agent_owner="audrey",
    score=0.8,
    excerpt="J+1 ...",
)


def types(events: list[TurnEvent]) -> list[str]:
    encoder = UIMessageEncoder()
    return [chunk["type"] for event in events for chunk in encoder.chunks(event)]


def test_a_turn_becomes_one_message_with_text_sources_and_metadata() -> None:
    encoder = UIMessageEncoder()
    events: list[TurnEvent] = [
        MetadataEvent(conversation_id="c", message_id="m", user_message_id="u"),
        RouteEvent(agent="audrey", reason="r", confidence=0.9, router="embedding/e5-knn"),
        SourcesEvent(sources=[SOURCE]),
        TokenEvent(text="Bon"),
        TokenEvent(text="jour"),
        EndEvent(
            message_id="m",
            agent="audrey",
            model="x",
            latency_ms=5,
            first_token_ms=2,
            usage=Usage(),
            llm=False,
        ),
    ]
    chunks = [chunk for event in events for chunk in encoder.chunks(event)]
    assert [c["type"] for c in chunks] == [
        "start",
        "start-step",
        "data-route",
        "source-document",
        "data-sources",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "finish-step",
        "finish",
    ]
    assert chunks[0]["messageId"] == "m"
    assert chunks[3] == {
        "type": "source-document",
        "sourceId": "1",
        "mediaType": "text/markdown",
        "title": "Séquence de bienvenue — Délais",
        "filename": "audrey/sequence-email-bienvenue.md",
    }
    assert "".join(c["delta"] for c in chunks if c["type"] == "text-delta") == "Bonjour"
    assert chunks[-1]["finishReason"] == "stop"
    assert chunks[-1]["messageMetadata"]["agent"] == "audrey"


def test_an_error_closes_the_text_and_says_why() -> None:
    error = ErrorEvent(
        code="generation_interrupted", message="Désolée", retryable=True, message_id="m"
    )
    assert types([TokenEvent(text="a"), error]) == [
        "text-start",
        "text-delta",
        "text-end",
        "error",
        "finish",
    ]
    assert types([error]) == ["error", "finish"]
    assert UIMessageEncoder().chunks(error)[0] == {"type": "error", "errorText": "Désolée"}


def test_the_ai_sdk_default_body_is_a_chat_request() -> None:
    body = {
        "id": "chat-123",
        "user_id": "u-1",
        "trigger": "submit-message",
        "messages": [
            {"id": "1", "role": "user", "parts": [{"type": "text", "text": "Bonjour"}]},
            {"id": "2", "role": "assistant", "parts": [{"type": "text", "text": "Salut"}]},
            {
                "id": "3",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "Un reel "},
                    {"type": "file", "url": "x"},
                    {"type": "text", "text": "viral ?"},
                ],
            },
        ],
    }
    request = ChatRequest.model_validate(body)
    assert (request.user_id, request.conversation_id, request.message) == (
        "u-1",
        "chat-123",
        "Un reel viral ?",
    )
    assert request.api_version == "v2"
    explicit = ChatRequest.model_validate({**body, "conversation_id": "conv-9", "message": "Mine"})
    assert (explicit.conversation_id, explicit.message) == ("conv-9", "Mine")


def test_kpis_without_traffic_are_unknown_not_failed() -> None:
    assert all(k.ok is None and k.value is None for k in evaluate(KpiCounts()))


def test_kpis_on_target() -> None:
    counts = KpiCounts(
        turns=200, errors=1, audrey=98, carole=96, escalate=6, answers=199, p95_ms=4200
    )
    assert {k.key: k.ok for k in evaluate(counts)} == {
        "response_time_p95": True,
        "error_rate": True,
        "audrey_share": True,
        "carole_share": True,
        "escalation_rate": True,
    }
