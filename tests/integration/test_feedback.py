"""Feedback on answers: the owner only, once per answer (sending again replaces), 404 otherwise."""

from __future__ import annotations

from typing import Any

import httpx

from services import Services
from store import feedback


async def answer(client: httpx.AsyncClient, user: str, conversation: str) -> dict[str, Any]:
    response = await client.post(
        "/api/chat",
        json={
            "user_id": user,
            "conversation_id": conversation,
            "message": "Comment automatiser mes emails de bienvenue ?",
        },
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def rate(client: httpx.AsyncClient, message_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/messages/{message_id}/feedback", json=body)


async def test_owner_rates_once_and_can_change_their_mind(
    client: httpx.AsyncClient, services: Services
) -> None:
    reply = await answer(client, "u-fb", "fb-1")
    first = await rate(client, reply["message_id"], user_id="u-fb", rating="up")
    assert first.status_code == 200
    assert (first.json()["rating"], first.json()["comment"]) == ("up", None)
    same = await rate(client, reply["message_id"], user_id="u-fb", rating="up")
    assert same.json() == first.json()  # idempotent: nothing changes, not even updated_at
    changed = await rate(
        client, reply["message_id"], user_id="u-fb", rating="down", comment="Trop vague."
    )
    assert (changed.json()["rating"], changed.json()["comment"]) == ("down", "Trop vague.")
    assert changed.json()["created_at"] == first.json()["created_at"]
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "select count(*) as n from feedback where message_id = %s", (reply["message_id"],)
        )
        assert (await cur.fetchone()) == {"n": 1}
    # The widget's history shows the rating; the operator sees the comment.
    history = (
        await client.get("/api/conversations/fb-1/messages", params={"user_id": "u-fb"})
    ).json()
    rated = next(m for m in history["messages"] if m["id"] == reply["message_id"])
    assert rated["rating"] == "down"
    assert rated["sources"]
    assert rated["sources"][0]["number"] == 1
    lines = await feedback.recent_feedback(services.pool, 50, "down")
    line = next(x for x in lines if str(x.message_id) == reply["message_id"])
    assert (line.comment, line.agent, line.user_id) == ("Trop vague.", "audrey", "u-fb")


async def test_only_the_owner_and_only_answers(client: httpx.AsyncClient) -> None:
    reply = await answer(client, "u-owner", "fb-2")
    history = (
        await client.get("/api/conversations/fb-2/messages", params={"user_id": "u-owner"})
    ).json()
    question_id = next(m["id"] for m in history["messages"] if m["role"] == "user")
    cases = [
        (reply["message_id"], "u-intruder"),  # someone else's answer
        (question_id, "u-owner"),  # the user's own message is not an answer
        ("00000000-0000-0000-0000-000000000000", "u-owner"),  # unknown
        ("not-a-uuid", "u-owner"),
    ]
    for message_id, user in cases:
        response = await rate(client, message_id, user_id=user, rating="up")
        assert response.status_code == 404, (message_id, user)
        assert response.json()["error"] == {
            "code": "message_not_found",
            "message": "Cette réponse n'existe pas.",
        }
    # Nothing was stored by the refused attempts.
    owner_view = (
        await client.get("/api/conversations/fb-2/messages", params={"user_id": "u-owner"})
    ).json()
    assert all(m["rating"] is None for m in owner_view["messages"])


async def test_bad_feedback_payloads_get_french_422(client: httpx.AsyncClient) -> None:
    reply = await answer(client, "u-422", "fb-3")
    for body, message in (
        ({"user_id": "u-422", "rating": "meh"}, "L'avis (rating) doit valoir 'up' ou 'down'."),
        ({"rating": "up"}, "L'identifiant utilisateur (user_id) est manquant."),
        (
            {"user_id": "u-422", "rating": "up", "comment": "x" * 2001},
            "Le commentaire est trop long (au plus 2000 caractères).",
        ),
    ):
        response = await rate(client, reply["message_id"], **body)
        assert response.status_code == 422
        assert response.json()["error"] == {"code": "invalid_request", "message": message}
