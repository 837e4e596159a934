"""The fake provider speaks the real clients' protocols: every test goes through the real SDKs
(openai, langchain-openai, cohere, langchain-cohere) over loopback HTTP, never a mock."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import cohere
import httpx
import openai
import pytest
from langchain_cohere import CohereRerank
from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI, OpenAIEmbeddings
from pydantic import BaseModel, Field

from devtools.fake_provider import FakeConfig, FakeProvider, fake_provider, split_tokens

SYSTEM = (
    "Tu réponds avec les extraits fournis entre les balises <documents>. Cite tes sources.\n"
    "<documents>\n[1] Guide des reels Instagram\nPubliez trois fois par semaine.\n</documents>"
)


class RouteChoice(BaseModel):
    route: Literal["audrey", "carole", "escalate"]
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx honours proxy variables; the fake is on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeProvider]:
    async with fake_provider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _reset(fake: FakeProvider) -> None:
    fake.reset()


def chat(fake: FakeProvider, model: str = "fake-chat", **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=fake.openai_base_url, api_key="x", max_retries=0, **kwargs
    )


async def test_stream_yields_tokens_in_order_after_an_empty_first_chunk(
    fake: FakeProvider,
) -> None:
    llm = chat(fake, stream_usage=True)
    chunks = [c async for c in llm.astream([SystemMessage(SYSTEM), HumanMessage("Salut")])]
    contents = [str(c.content) for c in chunks]
    assert contents[0] == ""
    text = "".join(contents)
    assert text.startswith("Réponse de fake-chat : ")
    assert "« [1] Guide des reels Instagram »" in text
    assert text.endswith(" [1]")
    assert [c for c in contents if c] == split_tokens(text)
    assert 20 <= len(split_tokens(text)) <= 45
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.usage_metadata is not None
    assert total.usage_metadata["output_tokens"] == len(text.split())
    assert total.response_metadata["finish_reason"] == "stop"
    [call] = fake.calls()
    assert call["stream"] is True
    assert call["body"]["stream_options"] == {"include_usage": True}


async def test_invoke_returns_scripted_text_usage_and_provider_field(fake: FakeProvider) -> None:
    fake.script("fake-chat", text="Bonjour à toutes les copines")
    message = await chat(fake).ainvoke("Une question de trois")
    assert message.content == "Bonjour à toutes les copines"
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == 4
    assert message.usage_metadata["output_tokens"] == 5
    assert message.response_metadata["model_name"] == "fake-chat"
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="x") as client:
        raw = await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        models = await client.models.list()
    assert raw.model == "openai/gpt-4o-mini"
    assert raw.id.startswith("chatcmpl-")
    assert getattr(raw, "provider", None) == "fake"
    assert "openai/gpt-4o-mini" in [m.id for m in models.data]


# langchain-openai streams json_schema through the SDK's `.stream()` helper and model_dumps its
# `content.done` event, whose `parsed` holds our RouteChoice: pydantic warns, harmlessly.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
async def test_structured_output_returns_the_keyword_decision(
    fake: FakeProvider, method: Literal["json_schema", "function_calling"]
) -> None:
    router = chat(fake, model="fake-router").with_structured_output(RouteChoice, method=method)
    carole = await router.ainvoke("Comment écrire une légende pour mon Réel Instagram ?")
    assert isinstance(carole, RouteChoice)
    assert carole.route == "carole"
    streamed = [c async for c in router.astream("Automatiser mes e-mails avec Zapier")]
    assert isinstance(streamed[-1], RouteChoice)
    assert streamed[-1].route == "audrey"
    escalate = await router.ainvoke("Je veux un remboursement")
    assert isinstance(escalate, RouteChoice)
    assert escalate.route == "escalate"
    fake.script("fake-router", decision={"route": "audrey", "confidence": 0.42, "reason": "x"})
    scripted = await router.ainvoke("Un reel ?")
    assert scripted == RouteChoice(route="audrey", confidence=0.42, reason="x")
    bodies = [c["body"] for c in fake.calls()]
    if method == "json_schema":
        assert all(b["response_format"]["type"] == "json_schema" for b in bodies)
    else:
        assert all(b["tool_choice"]["function"]["name"] == "RouteChoice" for b in bodies)
    assert [b.get("stream", False) for b in bodies] == [False, True, False, False]


async def test_embeddings_have_the_requested_dimensions_through_base64(
    fake: FakeProvider,
) -> None:
    async with httpx.AsyncClient() as http:  # OpenAIEmbeddings never closes a client it made
        embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]  # aliases of openai_api_*
            model="text-embedding-3-small",
            dimensions=256,
            check_embedding_ctx_length=False,
            base_url=fake.openai_base_url,
            api_key="x",
            http_async_client=http,
        )
        vectors = await embeddings.aembed_documents(["un reel", "une séquence email", "un reel"])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert vectors[0] == vectors[2] != vectors[1]
    assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
    [call] = fake.calls("/embeddings")
    assert call["body"]["encoding_format"] == "base64"
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="x") as client:
        floats = await client.embeddings.create(
            model="text-embedding-3-small", input="un reel", encoding_format="float"
        )
    assert len(floats.data[0].embedding) == 1536
    assert floats.usage.prompt_tokens == 2


async def test_cohere_rerank_orders_by_overlap_on_v2_and_v1(fake: FakeProvider) -> None:
    documents = [
        Document("Recette de la tarte aux pommes"),
        Document("Un reel Instagram par semaine"),
        Document("Automatiser vos emails avec Zapier et un CRM"),
    ]
    reranker = CohereRerank(
        base_url=fake.cohere_base_url,
        cohere_api_key="x",
        model="rerank-multilingual-v3.0",
        top_n=2,
    )
    with reranker.client:  # langchain-cohere never closes the ClientV2 it builds
        ranked = await reranker.acompress_documents(
            documents, "automatiser mes emails Zapier Instagram"
        )
    assert [d.page_content for d in ranked] == [
        documents[2].page_content,
        documents[1].page_content,
    ]
    assert ranked[0].metadata["relevance_score"] > ranked[1].metadata["relevance_score"]
    assert fake.calls()[-1]["path"] == "/v2/rerank"
    async with cohere.AsyncClient(api_key="x", base_url=fake.cohere_base_url) as v1:
        response = await v1.rerank(
            model="rerank-multilingual-v3.0",
            query="reel instagram",
            documents=[d.page_content for d in documents],
            return_documents=True,
        )
    assert [r.index for r in response.results] == [1, 0, 2]
    assert response.results[0].document is not None
    assert fake.calls()[-1]["path"] == "/v1/rerank"


async def test_status_faults_raise_the_openai_errors(fake: FakeProvider) -> None:
    fake.script("fake-chat", faults=["500", "429"])
    llm = chat(fake)
    with pytest.raises(openai.InternalServerError):
        await llm.ainvoke("hi")
    with pytest.raises(openai.RateLimitError) as raised:
        await llm.ainvoke("hi")
    assert raised.value.response.headers["retry-after"] == "0"
    assert (await llm.ainvoke("hi")).content  # the queue is empty: calls succeed again
    fake.script(faults=["500"])  # the next call of any model
    async with openai.AsyncOpenAI(
        base_url=fake.openai_base_url, api_key="x", max_retries=1
    ) as client:
        retried = await client.embeddings.create(model="emb", input="x")
    assert len(retried.data) == 1
    assert [c["fault"] for c in fake.calls()] == ["500", "429", "ok", "500", "ok"]


async def test_always_fault_and_rerank_fault(fake: FakeProvider) -> None:
    fake.script("broken", always="500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await chat(fake, model="broken").ainvoke("hi")
    fake.script("rerank-multilingual-v3.0", faults=["429"])
    async with cohere.AsyncClientV2(api_key="x", base_url=fake.cohere_base_url) as client:
        with pytest.raises(cohere.TooManyRequestsError):
            await client.rerank(
                model="rerank-multilingual-v3.0",
                query="q",
                documents=["a"],
                request_options={"max_retries": 0},
            )


async def test_cut_stream_yields_n_tokens_then_raises(fake: FakeProvider) -> None:
    fake.script("fake-chat", faults=["cut:3"], text="un deux trois quatre cinq six")
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):  # noqa: PT012 - the SDK wraps the broken read
        async for chunk in chat(fake).astream("hi"):
            received.append(str(chunk.content))
    assert [c for c in received if c] == ["un ", "deux ", "trois "]


async def test_malformed_chunk_breaks_the_stream(fake: FakeProvider) -> None:
    fake.script("fake-chat", faults=["malformed"])
    with pytest.raises(json.JSONDecodeError):
        _ = [c async for c in chat(fake).astream("hi")]


async def test_timeout_fault_fires_the_client_timeout(fake: FakeProvider) -> None:
    fake.script("fake-chat", faults=["timeout"])
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await chat(fake, timeout=0.5).ainvoke("hi")
    assert time.monotonic() - started < 3


async def test_latency_config_and_control_api_over_http() -> None:
    async with (
        fake_provider(FakeConfig(ttft_ms=200, token_delay_ms=5)) as provider,
        httpx.AsyncClient(base_url=provider.url) as http,
    ):
        started = time.monotonic()
        first_token_at = None
        async for chunk in chat(provider).astream("hi"):
            if chunk.content and first_token_at is None:
                first_token_at = time.monotonic() - started
        assert first_token_at is not None
        assert first_token_at >= 0.2
        reply = await http.post("/_fake/script", json={"config": {"ttft_ms": 0}})
        assert reply.json()["config"]["ttft_ms"] == 0
        provider.script(config={"token_delay_ms": 0})  # the same, in-process
        assert provider.state.config.token_delay_ms == 0
        bad = await http.post("/_fake/script", json={"model": "m", "faults": ["boom"]})
        assert bad.status_code == 400
        started = time.monotonic()
        await chat(provider).ainvoke("hi")
        assert time.monotonic() - started < 0.2
        calls = (await http.get("/_fake/calls")).json()
        assert [(c["path"], c["model"], c["stream"]) for c in calls] == [
            ("/v1/chat/completions", "fake-chat", True),
            ("/v1/chat/completions", "fake-chat", False),
        ]
        assert calls[0]["at"] <= calls[1]["at"]
        await http.post("/_fake/reset")
        assert (await http.get("/_fake/calls")).json() == []
        assert provider.state.config.ttft_ms == 200


async def test_tokens_keep_the_model_pace_when_the_fake_is_late() -> None:
    """Token i is due at first token + i delays: a late token (the fake's loop was busy) does
    not push every later one back, as a model's stream does not slow down for a busy client."""
    words = [f"mot{i} " for i in range(11)]
    async with fake_provider(FakeConfig(token_delay_ms=40)) as provider:
        provider.script("paced", text="".join(words))
        arrivals: list[float] = []
        async for chunk in chat(provider, model="paced").astream("hi"):
            if chunk.content:
                arrivals.append(time.monotonic())
                if len(arrivals) == 1:
                    time.sleep(0.12)  # noqa: ASYNC251 - blocks the fake's loop: three tokens late
    assert len(arrivals) == len(words)
    # Paced from the first token: 10 x 40 ms. One delay after each send would be >= 520 ms.
    assert 0.38 <= arrivals[-1] - arrivals[0] < 0.47
    assert min(b - a for a, b in itertools.pairwise(arrivals[4:])) >= 0.03
