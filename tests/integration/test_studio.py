"""langgraph.json names a graph that `langgraph dev` / Studio can load and run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from core.settings import ROOT, get_settings
from services import Services


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
        graph = await getattr(module, name)({"configurable": {}})
        runnable = graph.copy(update={"checkpointer": InMemorySaver()})
        config = {"configurable": {"thread_id": "studio-1"}}
        # What Studio sends: a message, no context, no turn options.
        await runnable.ainvoke(
            {"messages": [HumanMessage("Comment automatiser mes emails de bienvenue ?")]}, config
        )
        state = await runnable.aget_state(config)
    finally:
        await module._stack.aclose()
        get_settings.cache_clear()
    assert state.values["route"].route == "audrey"
    assert state.values["messages"][-1].name == "audrey"
    assert "[1]" in state.values["messages"][-1].text
