"""End to end over real HTTP: uvicorn -> FastAPI -> LangGraph (Postgres checkpointer) -> pgvector."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest

from services import Services
from tests.integration.conftest import LiveServer
from tests.integration.sse import stream_chat

SEED_AUDREY = {
    "user_id": "test-migration",
    "conversation_id": "test-conv-1",
    "message": "Comment automatiser mes emails de bienvenue?",
    "timestamp": "2025-11-03T12:00:00Z",
}
SEED_CAROLE = {
    "user_id": "test-migration",
    "conversation_id": "test-conv-2",
    "message": "Aide-moi à créer un reel viral sur Instagram",
    "timestamp": "2025-11-03T12:00:00Z",
}


async def rows(services: Services, conversation_id: str) -> list[dict[str, Any]]:
    async with services.pool.connection() as conn:
        cur = await conn.execute(
            "select id, role, content, agent, status, model, latency_ms, metadata from messages "
            "where conversation_id = %s order by created_at",
            (conversation_id,),
        )
        return list(await cur.fetchall())


@pytest.mark.parametrize(("payload", "agent"), [(SEED_AUDREY, "audrey"), (SEED_CAROLE, "carole")])
async def test_seed_step_4_calls(
    client: httpx.AsyncClient, services: Services, payload: dict[str, str], agent: str
) -> None:
    response = await client.post("/api/chat", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent"] == agent
    assert body["message"]
    assert body["timestamp"]
    assert body["conversation_id"] == payload["conversation_id"]
    assert body["llm"] is False
    assert "no LLM" in body["note"]
    assert body["sources"]
    assert "[1]" in body["message"]
    saved = await rows(services, payload["conversation_id"])
    assert [(r["role"], r["agent"], r["status"]) for r in saved[-2:]] == [
        ("user", agent, "answered"),
        ("assistant", agent, "complete"),
    ]
    assert saved[-1]["content"] == body["message"]
    assert str(saved[-1]["id"]) == body["message_id"]


async def test_stream_sends_metadata_route_tokens_then_end(
    client: httpx.AsyncClient, services: Services
) -> None:
    payload = {**SEED_AUDREY, "conversation_id": "stream-1"}
    events = await stream_chat(client, payload)
    kinds = [e.event for e in events]
    assert kinds[0] == "metadata"
    assert kinds[-1] == "end"
    assert kinds[1:3] == ["route", "sources"]
    assert kinds.count("token") >= 1
    assert set(kinds[3:-1]) == {"token"}
    # Ids are positions: 1, 2, 3, then each token's end in the answer's text, then one more.
    ids = [int(e.id or 0) for e in events]
    assert ids[:3] == [1, 2, 3]
    texts = [e.data["text"] for e in events if e.event == "token"]
    ends = [3 + len("".join(texts[: i + 1])) for i in range(len(texts))]
    assert ids[3:-1] == ends
    assert ids[-1] == ends[-1] + 1
    metadata, route, end = events[0].data, events[1].data, events[-1].data
    assert metadata["conversation_id"] == "stream-1"
    UUID(metadata["message_id"])
    assert route["agent"] == "audrey"
    assert route["reason"]
    assert end["message_id"] == metadata["message_id"]
    assert end["agent"] == "audrey"
    assert end["model"] == "extractive/v1"
    assert end["latency_ms"] >= 0
    assert end["usage"]["output_tokens"] == 0
    answer = "".join(e.data["text"] for e in events if e.event == "token")
    saved = await rows(services, "stream-1")
    assert saved[-1]["content"] == answer
    assert saved[-1]["latency_ms"] == end["latency_ms"]
    assert route["reason"] not in answer


async def test_v1_payload_on_the_stream(client: httpx.AsyncClient) -> None:
    events = await stream_chat(
        client,
        {
            "userId": "v1-user",
            "conversationId": "v1-conv",
            "message": "Aide-moi à créer un reel viral sur Instagram",
            "timestamp": "2025-11-03T12:00:00Z",
        },
    )
    assert events[1].data["agent"] == "carole"
    assert events[-1].event == "end"


async def test_escalation_over_http(client: httpx.AsyncClient, services: Services) -> None:
    response = await client.post(
        "/api/chat",
        json={
            "user_id": "u-esc",
            "conversation_id": "esc-1",
            "message": "Je veux être remboursée, ma facture est fausse",
        },
    )
    body = response.json()
    assert body["agent"] == "escalate"
    assert "personne de l'équipe" in body["message"]
    saved = await rows(services, "esc-1")
    assert saved[-1]["metadata"]["route"]["reason"].startswith("rule:")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"user_id": "u", "conversation_id": "bad-1", "message": ""}, "Le message est vide."),
        ({"user_id": "u", "message": "Bonjour"}, "identifiant de conversation"),
        ({"user_id": "u", "conversation_id": "bad-1", "message": ["a"]}, "chaîne de caractères"),
        ({"user_id": 12, "conversation_id": "bad-1", "message": "Bonjour"}, "chaîne de caractères"),
    ],
)
async def test_bad_input_is_a_readable_422_and_saves_nothing(
    client: httpx.AsyncClient, services: Services, payload: dict[str, object], fragment: str
) -> None:
    for path in ("/api/chat", "/api/chat/stream"):
        response = await client.post(path, json=payload)
        assert response.status_code == 422
        assert fragment in response.json()["error"]["message"]
    assert await rows(services, "bad-1") == []


async def test_body_that_is_not_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/chat", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Le corps de la requête n'est pas du JSON valide."


async def test_someone_elses_conversation_is_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    first = await client.post(
        "/api/chat",
        json={
            "user_id": "owner",
            "conversation_id": "owned-1",
            "message": "Comment configurer DKIM ?",
        },
    )
    assert first.status_code == 200
    intruder = await client.post(
        "/api/chat", json={"user_id": "intruder", "conversation_id": "owned-1", "message": "coucou"}
    )
    unknown = await client.get(
        "/api/conversations/never-seen/messages", params={"user_id": "intruder"}
    )
    # Exactly the answer for a conversation that does not exist: ids do not leak.
    assert intruder.status_code == unknown.status_code == 404
    assert intruder.json() == unknown.json()
    assert [r["content"] for r in await rows(services, "owned-1") if r["role"] == "user"] == [
        "Comment configurer DKIM ?"
    ]


async def test_history_for_the_widget(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/chat",
        json={
            "user_id": "hist-user",
            "conversation_id": "hist-1",
            "message": "Comment configurer DKIM ?",
        },
    )
    response = await client.get(
        "/api/conversations/hist-1/messages", params={"user_id": "hist-user"}
    )
    assert response.status_code == 200
    messages = response.json()["messages"]
    assert [(m["role"], m["agent"]) for m in messages] == [
        ("user", "audrey"),
        ("assistant", "audrey"),
    ]
    theirs = await client.get("/api/conversations/hist-1/messages", params={"user_id": "x"})
    missing = await client.get("/api/conversations/nope/messages", params={"user_id": "x"})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()
    assert (await client.get("/api/conversations/hist-1/messages")).status_code == 422


async def test_health_and_nginx_paths(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/health"):
        body = (await client.get(path)).json()
        assert body["status"] == "ok"
        assert body["database"] == "ok"
        assert body["mode"] == "embedded"
        assert body["llm"] is False
        assert body["providers"]["generator"] == "extractive/v1"
        assert body["documents"]["audrey"] > 0
    assert (await client.get("/docs")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert {
        "/api/chat",
        "/api/chat/stream",
        "/api/conversations/{conversation_id}/messages",
    } <= set(schema["paths"])


async def test_conversation_survives_a_server_restart(settings: object, services: Services) -> None:
    first = LiveServer(services.settings)
    await first.start()
    async with httpx.AsyncClient(base_url=first.url, timeout=60) as http:
        one = await http.post(
            "/api/chat",
            json={
                "user_id": "r-user",
                "conversation_id": "restart-1",
                "message": "Comment automatiser mes emails de bienvenue ?",
            },
        )
        assert one.json()["agent"] == "audrey"
    await first.stop()

    second = LiveServer(services.settings)
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=60) as http:
            events = await stream_chat(
                http,
                {
                    "user_id": "r-user",
                    "conversation_id": "restart-1",
                    "message": "et pour le délai ?",
                },
            )
    finally:
        await second.stop()
    assert events[1].data["agent"] == "audrey"
    state = await services.graph.aget_state({"configurable": {"thread_id": "restart-1"}})
    messages = state.values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[0].text == "Comment automatiser mes emails de bienvenue ?"
    assert state.values["query"].startswith("Comment automatiser mes emails de bienvenue ?")


async def test_no_request_hops_to_a_thread_for_its_dependencies(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dependency is async: FastAPI runs a plain function dependency in its thread pool,
    a hop on every request (the server runs in this test's event loop)."""
    import fastapi.dependencies.utils as solving
    from starlette.concurrency import run_in_threadpool as original

    hops: list[str] = []

    async def counted(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(solving, "run_in_threadpool", counted)
    assert (await client.get("/health")).status_code == 200
    reply = await client.post(
        "/api/chat",
        json={"message": "Des idées de reels ?", "user_id": "u-hops", "conversation_id": "c-hops"},
    )
    assert reply.status_code == 200, reply.text
    history = await client.get("/api/conversations/c-hops/messages", params={"user_id": "u-hops"})
    assert history.status_code == 200, history.text
    assert hops == []
