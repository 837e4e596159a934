"""Per-node run records, checkpoints, and replay on a fork (LangGraph time travel)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from devtools import timetravel
from services import Services
from store import messages as store
from tests.integration.test_search_and_ingest import chatbot


async def two_turns(client: httpx.AsyncClient, conversation: str) -> None:
    for message in ("Comment automatiser mes emails de bienvenue ?", "et pour le délai ?"):
        response = await client.post(
            "/api/chat",
            json={"user_id": "dev", "conversation_id": conversation, "message": message},
        )
        assert response.status_code == 200


async def test_runs_list_shows_each_turn_with_node_timings(
    client: httpx.AsyncClient, services: Services
) -> None:
    await two_turns(client, "runs-1")
    lines = await timetravel.checkpoints(services, "runs-1")
    turns = list(dict.fromkeys(line.run_id for line in lines))
    assert len(turns) == 2
    nodes = [(n.node, n.status) for line in lines for n in line.nodes]
    assert nodes.count(("route", "ok")) == 2
    assert nodes.count(("audrey", "ok")) == 2
    assert all(
        n.duration_ms is not None and n.duration_ms >= 0 for line in lines for n in line.nodes
    )
    route = next(n for line in lines for n in line.nodes if n.node == "route")
    assert route.detail["route"] == "audrey"
    assert route.detail["reason"]
    rerank = next(n for line in lines for n in line.nodes if n.node == "rerank")
    assert rerank.detail["passages"]
    assert "rerank_score" in rerank.detail["passages"][0]
    text = timetravel.format_runs(lines)
    assert len(re.findall(r"^turn \d+ ·", text, flags=re.MULTILINE)) == 2
    # Each turn is titled with what the user asked, not the search query built from it.
    assert "'Comment automatiser mes emails de bienvenue ?' -> audrey" in text
    assert "'et pour le délai ?' -> audrey" in text
    assert "route" in text
    assert " ms" in text


async def test_replay_from_the_first_turn_forks_and_leaves_history_intact(
    client: httpx.AsyncClient, services: Services
) -> None:
    await two_turns(client, "runs-2")
    before = await timetravel.checkpoints(services, "runs-2")
    first_input = before[0]
    assert first_input.source == "input"
    assert first_input.step == -1
    result = await timetravel.replay(
        services,
        "runs-2",
        first_input.checkpoint_id,
        message="Aide-moi à créer un reel viral sur Instagram",
    )
    assert result.agent == "carole"
    assert result.old_answer
    assert result.new_answer
    assert result.new_answer != result.old_answer
    assert result.fork_thread_id.startswith("runs-2:replay:")
    assert {r.node for r in result.runs} >= {"route", "retrieve", "rerank", "carole"}
    after = await timetravel.checkpoints(services, "runs-2")
    assert [line.checkpoint_id for line in after] == [line.checkpoint_id for line in before]
    stored = await store.list_messages(services.pool, "runs-2")
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
    state = await timetravel.state_at(services, "runs-2")
    assert [m["content"] for m in state["messages"] if m["role"] == "user"] == [
        "Comment automatiser mes emails de bienvenue ?",
        "et pour le délai ?",
    ]


async def test_replay_inside_a_turn_reruns_its_question(
    client: httpx.AsyncClient, services: Services
) -> None:
    await two_turns(client, "runs-3")
    lines = await timetravel.checkpoints(services, "runs-3")
    after_route = next(line for line in lines if any(n.node == "route" for n in line.nodes))
    result = await timetravel.replay(services, "runs-3", after_route.checkpoint_id)
    assert result.message == "Comment automatiser mes emails de bienvenue ?"
    assert result.agent == "audrey"


async def test_cli_graph_and_runs(
    client: httpx.AsyncClient, data_dir: Path, tmp_path: Path
) -> None:
    await two_turns(client, "runs-cli")
    env = {"DATA_DIR": str(data_dir), "INGEST_ON_START": "false"}
    listed = chatbot("runs", "list", "runs-cli", env=env)
    assert listed.returncode == 0, listed.stderr
    assert len(re.findall(r"^turn \d+ ·", listed.stdout, flags=re.MULTILINE)) == 2
    assert "rerank" in listed.stdout
    mermaid = chatbot("graph", env=env)
    assert "route --> rerank" in mermaid.stdout
    assert "rerank -.-> escalate" in mermaid.stdout
    png = tmp_path / "graph.png"
    drawn = chatbot("graph", "--png", str(png), env=env)
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
