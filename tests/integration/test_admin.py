"""Developer tools over HTTP: off without ADMIN_TOKEN, token-protected with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from server import serve_in_background
from services import Services
from tests.integration.conftest import _free_port

TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
async def admin_url(services: Services) -> AsyncIterator[str]:
    settings = services.settings.model_copy(update={"admin_token": SecretStr(TOKEN)})
    async with serve_in_background(settings, _free_port()) as url:
        yield url


async def test_tools_are_off_without_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/conversations/x/runs")).status_code == 404
    assert (await client.get("/inspector")).status_code == 404


async def test_runs_checkpoints_and_replay_over_http(admin_url: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=admin_url, timeout=60) as http:
        for message in ("Comment automatiser mes emails de bienvenue ?", "et pour le délai ?"):
            await http.post(
                "/api/chat",
                json={"user_id": "dev", "conversation_id": "admin-1", "message": message},
            )
        assert (await http.get("/api/conversations/admin-1/runs")).status_code == 401
        wrong = await http.get(
            "/api/conversations/admin-1/runs", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        assert "Jeton" in wrong.json()["error"]["message"]
        lines = (await http.get("/api/conversations/admin-1/runs", headers=auth)).json()
        assert len({line["run_id"] for line in lines}) == 2
        first = lines[0]["checkpoint_id"]
        state = (
            await http.get(f"/api/conversations/admin-1/checkpoints/{first}", headers=auth)
        ).json()
        assert state["step"] == -1
        assert state["pending"] == ["__start__"]
        replay = await http.post(
            "/api/conversations/admin-1/replay",
            headers=auth,
            json={
                "checkpoint_id": first,
                "message": "Aide-moi à créer un reel viral sur Instagram",
            },
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["agent"] == "carole"
        end_of_turn = lines[-1]["checkpoint_id"]
        refused = await http.post(
            "/api/conversations/admin-1/replay", headers=auth, json={"checkpoint_id": end_of_turn}
        )
        assert refused.status_code == 422
        assert "--message" in refused.json()["error"]["message"]
        assert (await http.get("/api/conversations/nope/runs", headers=auth)).status_code == 404
        png = await http.get("/api/admin/graph.png", headers=auth)
        assert png.headers["content-type"] == "image/png"
        assert png.content[:4] == b"\x89PNG"
        assert (await http.get("/inspector")).status_code == 200
