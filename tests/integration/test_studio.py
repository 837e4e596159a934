"""langgraph.json names a graph that `langgraph dev` / Studio can load and run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from uuid import uuid4

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graph.services import Services
from graph.settings import ROOT, get_settings
from graph.turns import turn_input


async def test_graph_named_in_langgraph_json_runs_a_turn(
    services: Services, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = json.loads((ROOT / "langgraph.json").read_text())
    path, _, name = spec["graphs"]["chat"].partition(":")
    module_spec = importlib.util.spec_from_file_location("studio_graph", ROOT / path)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("INGEST_ON_START", "false")
    get_settings.cache_clear()
    try:
        async with getattr(module, name)({"configurable": {}}) as graph:
            runnable = graph.copy(update={"checkpointer": InMemorySaver()})
            config = {"configurable": {"thread_id": "studio-1"}}
            await runnable.ainvoke(
                turn_input("Comment automatiser mes emails de bienvenue ?", uuid4(), uuid4(), None),
                config,
            )
            state = await runnable.aget_state(config)
    finally:
        get_settings.cache_clear()
    assert state.values["route"].route == "audrey"
    assert state.values["messages"][-1].name == "audrey"
    assert "[1]" in state.values["messages"][-1].text
