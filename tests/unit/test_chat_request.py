"""`request_payload` changes how the SDK builds a chat request, not the request itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from devtools.fake_provider import FakeProvider, fake_provider
from providers.chat import request_payload

MESSAGES = [
    SystemMessage("Tu es Carole. <documents>[1] Guide des reels</documents>"),
    HumanMessage("Combien de reels par semaine ?"),
    AIMessage("Trois, d'après le guide [1]."),
    HumanMessage("et pour LinkedIn ? 🙂"),
]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the fake is on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.mark.parametrize("extra_body", [None, {"models": ["a/b", "c/d"]}])
async def test_the_request_on_the_wire_is_the_one_create_sends(
    fake: FakeProvider, extra_body: dict[str, Any] | None
) -> None:
    model = ChatOpenAI(
        model="fake-chat",
        base_url=fake.openai_base_url,
        api_key="x",
        max_retries=0,
        temperature=0.3,
        extra_body=extra_body,
    )
    client = model.root_async_client.chat.completions
    await client.create(**model._get_request_payload(MESSAGES))
    await client.create(**request_payload(model, MESSAGES))
    plain, through_extra_body = (call["body"] for call in fake.calls("/chat/completions"))
    assert through_extra_body == plain
    assert [m["role"] for m in plain["messages"]] == ["system", "user", "assistant", "user"]
    assert plain["messages"][-1]["content"] == "et pour LinkedIn ? 🙂"
