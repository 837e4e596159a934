"""Hand-off to a person, end to end: an escalated turn opens it, the team's webhook receives a
signed POST (retried after a failure), the user's messages wait without routing, the team
replies, releases, and the bot answers again."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from services import Services
from store.analytics import read_query
from tests.integration.conftest import LLM_ADMIN_TOKEN, WEBHOOK_SECRET, LiveServer
from tests.integration.local_http import Receiver
from tests.integration.sse import read_events, stream_chat

ADMIN = {"Authorization": f"Bearer {LLM_ADMIN_TOKEN}"}
ESCALATE = "Je veux parler à un humain : ma facture est fausse et je veux être remboursée."


@pytest.fixture
async def http(llm_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """The server with hand-off webhooks to the session's receiver (LLM routing and generation
    on the fake provider)."""
    async with httpx.AsyncClient(base_url=llm_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def hook(webhook: Receiver) -> Receiver:
    return webhook


async def query(services: Services, sql: str, *args: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        services.database_url, row_factory=dict_row
    ) as conn:
        cur = await conn.execute(sql.encode(), args)
        return list(await cur.fetchall())


async def history(http: httpx.AsyncClient, conversation: str, user: str) -> dict[str, Any]:
    response = await http.get(
        f"/api/conversations/{conversation}/messages", params={"user_id": user}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def settled(http: httpx.AsyncClient, handoff_id: str) -> dict[str, Any]:
    """The hand-off once its webhook delivery has an outcome (the receiver answers before the
    sender records it)."""
    deadline = time.monotonic() + 10
    while True:
        detail = (await http.get(f"/api/admin/handoffs/{handoff_id}", headers=ADMIN)).json()
        stored: dict[str, Any] = detail["handoff"]
        if stored["webhook_status"] != "pending" or time.monotonic() > deadline:
            return stored
        await asyncio.sleep(0.05)


async def graph_runs(services: Services, conversation: str) -> int:
    rows = await query(
        services,
        "select count(distinct run_id) as n from graph_runs where conversation_id = %s",
        conversation,
    )
    return int(rows[0]["n"])


async def test_handoff_lifecycle(
    http: httpx.AsyncClient, hook: Receiver, services: Services
) -> None:
    user, conversation = "u-handoff", "handoff-1"
    say = {"user_id": user, "conversation_id": conversation}

    # 1. An escalated turn opens the hand-off. (Its webhook will first meet a 503.)
    hook.statuses.append(503)
    events = await stream_chat(http, {**say, "message": ESCALATE})
    route = next(e.data for e in events if e.event == "route")
    assert route["agent"] == "escalate"
    assert events[-1].event == "end"
    answer_id = events[-1].data["message_id"]
    assert (await history(http, conversation, user))["status"] == "waiting_for_human"
    opened = (await http.get("/api/admin/handoffs", headers=ADMIN)).json()
    handoff = next(h for h in opened if h["conversation_id"] == conversation)
    assert handoff["status"] == "open"
    assert handoff["reason"] == route["reason"]
    assert handoff["router"] == route["router"]
    assert handoff["reply_id"] == answer_id
    assert [m["role"] for m in handoff["last_messages"]][-2:] == ["user", "assistant"]
    assert handoff["last_messages"][-2]["content"] == ESCALATE

    # 2. The team's receiver gets a signed POST; the first answer (503) is retried.
    first, second = await hook.wait_for(2, delivery=handoff["id"])
    assert second.body == first.body
    for delivery in (first, second):
        timestamp = delivery.headers["x-chatbot-timestamp"]
        expected = hmac.new(
            WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(delivery.headers["x-chatbot-signature"], f"sha256={expected}")
        assert abs(time.time() - int(timestamp)) < 60
        assert delivery.headers["x-chatbot-delivery"] == handoff["id"]
        assert delivery.headers["x-chatbot-event"] == "handoff.opened"
    payload = json.loads(second.body)
    assert payload["event"] == "handoff.opened"
    assert payload["handoff_id"] == handoff["id"]
    assert payload["conversation_id"] == conversation
    assert payload["user_id"] == user
    assert payload["reason"] == route["reason"]
    assert payload["last_messages"][-2]["content"] == ESCALATE
    stored = await settled(http, handoff["id"])
    assert (stored["webhook_status"], stored["webhook_attempts"]) == ("delivered", 2)
    assert stored["webhook_http_status"] == 200

    # 3. While waiting: messages are stored and acknowledged, not routed, not generated.
    runs_before = await graph_runs(services, conversation)
    seed_before = await query(services, read_query("monitoring_1_volume_by_version"))
    held = await stream_chat(http, {**say, "message": "Vous êtes là ? C'est urgent."})
    assert [e.event for e in held] == ["metadata", "route", "token", "end"]
    assert held[1].data["router"] == "handoff"
    assert "équipe" in held[2].data["text"]
    assert held[-1].data["agent"] == "escalate"
    assert await graph_runs(services, conversation) == runs_before
    rows = await query(
        services,
        "select role, agent, status, metadata from messages where conversation_id = %s "
        "order by created_at",
        conversation,
    )
    held_user, ack = rows[-2], rows[-1]
    assert (held_user["role"], held_user["agent"], held_user["status"]) == (
        "user",
        None,
        "answered",
    )
    assert held_user["metadata"]["handoff_id"] == handoff["id"]
    assert (ack["role"], ack["metadata"]["kind"]) == ("notice", "handoff_ack")
    # Its stream resumes like any answer's (the acknowledgement carries the answer's id).
    async with http.stream(
        "GET",
        f"/api/chat/stream/{held[0].data['message_id']}",
        params={"user_id": user},
        headers={"Last-Event-ID": "1"},
    ) as response:
        replayed = [e async for e in read_events(response)]
    assert (replayed[0].event, replayed[0].data) == ("route", held[1].data)
    tokens = [e for e in replayed if e.event == "token"]
    assert "".join(e.data["text"] for e in tokens) == held[2].data["text"]
    assert tokens[-1].id == held[2].id  # ids are positions in the answer, live or replayed
    assert (replayed[-1].event, replayed[-1].id) == ("end", held[-1].id)
    # The JSON route answers the same way.
    body = (await http.post("/api/chat", json={**say, "message": "Toujours là ?"})).json()
    assert body["agent"] == "escalate"
    assert body["message"] == held[2].data["text"]
    listed = (await http.get("/api/admin/handoffs", headers=ADMIN)).json()
    assert next(h for h in listed if h["id"] == handoff["id"])["held_messages"] == 2

    # 4. The team replies: stored as human_agent, in the user's history.
    reply = await http.post(
        f"/api/admin/handoffs/{handoff['id']}/messages",
        json={"content": "Bonjour, c'est Sophie : je regarde votre facture.", "author": "Sophie"},
        headers=ADMIN,
    )
    assert reply.status_code == 201
    assert reply.json()["role"] == "human_agent"
    shown = (await history(http, conversation, user))["messages"]
    team = [m for m in shown if m["role"] == "human_agent"]
    assert [(m["content"], m["author"]) for m in team] == [
        ("Bonjour, c'est Sophie : je regarde votre facture.", "Sophie")
    ]

    # 5. Release: the conversation is the bot's again; a second release changes nothing.
    released = await http.post(
        f"/api/admin/handoffs/{handoff['id']}/release",
        json={"released_by": "Sophie"},
        headers=ADMIN,
    )
    assert released.status_code == 200
    assert (released.json()["status"], released.json()["released_by"]) == ("released", "Sophie")
    again = await http.post(f"/api/admin/handoffs/{handoff['id']}/release", headers=ADMIN)
    assert again.json()["released_at"] == released.json()["released_at"]
    after = await history(http, conversation, user)
    assert after["status"] == "active"
    assert after["messages"][-1]["role"] == "notice"
    late = await http.post(
        f"/api/admin/handoffs/{handoff['id']}/messages", json={"content": "oups"}, headers=ADMIN
    )
    assert (late.status_code, late.json()["error"]["code"]) == (409, "handoff_released")

    # The guide's monitoring query counts answers only: held messages, notices and the
    # team's reply did not change it.
    assert await query(services, read_query("monitoring_1_volume_by_version")) == seed_before

    # 6. The next message is routed again.
    routed = await stream_chat(
        http, {**say, "message": "Comment automatiser mes emails de bienvenue ?"}
    )
    assert next(e.data for e in routed if e.event == "route")["agent"] == "audrey"
    assert routed[-1].event == "end"
    assert await graph_runs(services, conversation) == runs_before + 1


async def test_admin_routes_need_the_token_and_known_ids(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/admin/handoffs")).status_code == 401
    unknown = "00000000-0000-0000-0000-000000000000"
    for path in (f"/api/admin/handoffs/{unknown}", "/api/admin/handoffs/not-a-uuid"):
        response = await http.get(path, headers=ADMIN)
        assert (response.status_code, response.json()["error"]["code"]) == (
            404,
            "handoff_not_found",
        )
    response = await http.post(
        f"/api/admin/handoffs/{unknown}/messages", json={"content": "x"}, headers=ADMIN
    )
    assert response.status_code == 404
    response = await http.post(
        f"/api/admin/handoffs/{unknown}/messages", json={"content": " "}, headers=ADMIN
    )
    assert response.status_code == 422


async def test_webhook_refused_for_good_is_not_retried(
    http: httpx.AsyncClient, hook: Receiver, services: Services
) -> None:
    hook.statuses.append(400)
    payload = {"user_id": "u-refused", "conversation_id": "handoff-refused"}
    await stream_chat(http, {**payload, "message": ESCALATE})
    found = await query(
        services, "select id::text from handoffs where conversation_id = 'handoff-refused'"
    )
    handoff_id = found[0]["id"]
    await hook.wait_for(1, delivery=handoff_id)
    stored = await settled(http, handoff_id)
    rows = [{k: stored[k] for k in ("webhook_status", "webhook_attempts", "webhook_http_status")}]
    assert rows == [{"webhook_status": "failed", "webhook_attempts": 1, "webhook_http_status": 400}]
    await asyncio.sleep(0.3)  # several backoff periods: no retry comes
    assert len(hook.of(handoff_id)) == 1
