"""`langgraph dev` serves the chat graph, as LangGraph Studio drives it.

The real CLI runs in its own process, offline, on a free port, without `--allow-blocking` (so
its blocking-call detector is on), and joins the session's embedded Postgres (already migrated
and ingested). The official `langgraph-sdk` client streams runs through its HTTP API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from devtools.langgraph_dev import langgraph_dev
from devtools.processes import ServerProcess, clean_environment
from services import Services

QUESTION = "Comment automatiser mes emails de bienvenue ?"
FOLLOW_UP = "et pour le délai ?"


@dataclass
class Turn:
    """What one streamed run returned."""

    tokens: list[str] = field(default_factory=list)
    updates: dict[str, Any] = field(default_factory=dict)
    errors: list[Any] = field(default_factory=list)

    @property
    def route(self) -> dict[str, Any]:
        decision: dict[str, Any] = self.updates["route"]["route"]
        return decision


@pytest.fixture(scope="module")
async def dev_server(
    services: Services,
    data_dir: Path,
    knowledge_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    # `services` first: the knowledge base is ingested once; the dev server only joins it.
    env = clean_environment(DATA_DIR=str(data_dir), KNOWLEDGE_DIR=str(knowledge_dir))
    # A generous start-up time: a loaded 2-core machine imports LangGraph, loads the model and
    # warms the router before the server answers.
    async with langgraph_dev(tmp_path_factory.mktemp("langgraph-dev"), env, 240) as server:
        yield server


@pytest.fixture
async def client(dev_server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    async with get_client(url=dev_server.url, api_key=None, timeout=120) as sdk:
        yield sdk


async def stream_turn(
    client: LangGraphClient, thread_id: str, message: str | None, **kwargs: Any
) -> Turn:
    """One run on the thread, streamed as Studio streams it: tokens and node updates (no
    message: carry on from the thread's checkpoint)."""
    turn = Turn()
    graph_input: dict[str, Any] | None = (
        None if message is None else {"messages": [{"role": "human", "content": message}]}
    )
    async for part in client.runs.stream(
        thread_id,
        "chat",
        input=graph_input,
        stream_mode=["custom", "updates"],
        **kwargs,
    ):
        if part.event == "custom" and "token" in part.data:
            turn.tokens.append(part.data["token"])
        elif part.event == "updates":
            turn.updates.update(part.data)
        elif part.event == "error":
            turn.errors.append(part.data)
    return turn


async def thread_messages(client: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    """The thread's messages, as the dev server's checkpointer holds them."""
    values = (await client.threads.get_state(thread_id))["values"]
    assert isinstance(values, dict)
    messages: list[dict[str, Any]] = values["messages"]
    return messages


async def test_a_run_streams_the_persona_and_the_next_run_sees_the_first_turn(
    client: LangGraphClient,
) -> None:
    thread = await client.threads.create()

    # What Studio sends by default: a message, no context.
    first = await stream_turn(client, thread["thread_id"], QUESTION)

    assert first.errors == []
    assert first.route["route"] == "audrey"
    assert len(first.tokens) > 5, "the answer is streamed token by token"
    messages = await thread_messages(client, thread["thread_id"])
    assert [m["type"] for m in messages] == ["human", "ai"]
    assert messages[-1]["name"] == "audrey"
    assert "".join(first.tokens) == messages[-1]["content"]
    assert "[1]" in messages[-1]["content"]

    # A follow-up on the same thread, with an empty context: the first turn is its history.
    second = await stream_turn(client, thread["thread_id"], FOLLOW_UP, context={})

    assert second.errors == []
    assert second.route["route"] == "audrey"
    assert "follow-up" in second.route["reason"]
    assert QUESTION in second.updates["retrieve"]["query"]
    messages = await thread_messages(client, thread["thread_id"])
    assert [m["content"] for m in messages if m["type"] == "human"] == [QUESTION, FOLLOW_UP]
    assert [m["type"] for m in messages] == ["human", "ai", "human", "ai"]
    assert "".join(second.tokens) == messages[-1]["content"]


async def test_context_knobs_are_optional_and_the_providers_are_not_among_them(
    client: LangGraphClient,
) -> None:
    assistant = (await client.assistants.search(graph_id="chat"))[0]
    schema = (await client.assistants.get_schemas(assistant["assistant_id"]))["context_schema"]
    assert schema is not None
    # Studio's form for the context: the knobs, each with its default; nothing to fill in.
    assert set(schema["properties"]) == {"retrieve_k", "rerank_top_n", "follow_up_max_words"}
    assert all("default" in knob for knob in schema["properties"].values())
    assert not schema.get("required")

    default = await stream_turn(client, (await client.threads.create())["thread_id"], QUESTION)
    # A caller cannot send providers: the server drops keys the schema lacks.
    tuned = await stream_turn(
        client,
        (await client.threads.create())["thread_id"],
        QUESTION,
        context={"retrieve_k": 2, "providers": {"router": "nope"}},
    )

    assert default.errors == tuned.errors == []
    assert len(default.updates["retrieve"]["candidates"]["audrey"]) > 2
    assert len(tuned.updates["retrieve"]["candidates"]["audrey"]) == 2
    assert tuned.route["route"] == "audrey"
    assert tuned.tokens


async def test_a_knob_out_of_bounds_fails_the_run_naming_it(client: LangGraphClient) -> None:
    thread = await client.threads.create()

    turn = await stream_turn(client, thread["thread_id"], QUESTION, context={"retrieve_k": 0})

    assert turn.tokens == []
    assert len(turn.errors) == 1
    assert "retrieve_k" in str(turn.errors[0])


async def test_a_checkpoint_edited_in_studio_runs_on_from_there(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    first = await stream_turn(client, thread["thread_id"], QUESTION)
    before_persona = next(
        checkpoint
        for checkpoint in await client.threads.get_history(thread["thread_id"])
        if checkpoint["next"] == ["audrey"]
    )

    # Studio's "edit state" on that checkpoint: another route, as JSON, as if from rerank.
    edited = await client.threads.update_state(
        thread["thread_id"],
        {"route": {**first.route, "route": "carole", "reason": "edited in Studio"}},
        as_node="rerank",
        checkpoint_id=before_persona["checkpoint"]["checkpoint_id"],
    )
    fork = await stream_turn(
        client, thread["thread_id"], None, checkpoint_id=edited["checkpoint"]["checkpoint_id"]
    )

    assert fork.errors == []
    assert list(fork.updates) == ["carole"]
    messages = await thread_messages(client, thread["thread_id"])
    assert [(m["type"], m.get("name")) for m in messages] == [("human", None), ("ai", "carole")]


async def test_services_open_once_per_process_without_blocking_the_loop(
    client: LangGraphClient, dev_server: ServerProcess
) -> None:
    # Every kind of graph access Studio makes: a run, a state read, the drawing, the schemas.
    thread = await client.threads.create()
    assert (await stream_turn(client, thread["thread_id"], QUESTION)).errors == []
    await client.threads.get_state(thread["thread_id"])
    assistant = (await client.assistants.search(graph_id="chat"))[0]
    graph = await client.assistants.get_graph(assistant["assistant_id"])
    await client.assistants.get_schemas(assistant["assistant_id"])

    assert {node["id"] for node in graph["nodes"]} >= {"begin_turn", "route", "retrieve", "rerank"}
    log = dev_server.output()
    assert log.count("chat graph ready: services opened") == 1, log[-5000:]
    assert "BlockingError" not in log
