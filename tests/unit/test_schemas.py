"""Both payload versions of the seed's A/B migration, and the 422s the widget can show."""

import pytest
from pydantic import ValidationError

from api.errors import describe
from api.schemas import ChatRequest


def test_v2_payload() -> None:
    body = ChatRequest.model_validate(
        {
            "user_id": "test-migration",
            "conversation_id": "test-conv-1",
            "message": "Comment automatiser mes emails de bienvenue?",
            "timestamp": "2025-11-03T12:00:00Z",
        }
    )
    assert (body.user_id, body.conversation_id, body.api_version) == (
        "test-migration",
        "test-conv-1",
        "v2",
    )
    assert body.timestamp is not None
    assert body.timestamp.year == 2025


def test_v1_payload() -> None:
    body = ChatRequest.model_validate(
        {
            "userId": "u1",
            "conversationId": "c1",
            "message": "Salut",
            "timestamp": "2025-11-03T12:00:00Z",
        }
    )
    assert (body.user_id, body.conversation_id, body.api_version) == ("u1", "c1", "v1")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"user_id": "u", "conversation_id": "c", "message": "   "}, "Le message est vide."),
        ({"user_id": "u", "conversation_id": "c"}, "Le message est manquant."),
        (
            {"conversation_id": "c", "message": "x"},
            "L'identifiant utilisateur (user_id) est manquant.",
        ),
        ({"user_id": "u", "conversation_id": "c", "message": 42}, "doit être une chaîne"),
        ({"user_id": "u", "conversation_id": "c", "message": "x" * 4001}, "trop long"),
        ({"user_id": "u", "conversation_id": "c d", "message": "x"}, "caractères non autorisés"),
        ({"user_id": "u", "conversation_id": "c", "message": "x", "timestamp": "hier"}, "ISO 8601"),
    ],
)
def test_invalid_payloads_have_readable_messages(payload: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ChatRequest.model_validate(payload)
    messages = " ".join(describe(dict(e)) for e in caught.value.errors())
    assert fragment in messages
