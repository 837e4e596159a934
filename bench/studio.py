"""What `langgraph dev` (LangGraph Studio's server) costs: start, graph loads, runs.

Starts the real dev server against the embedded database (DATA_DIR, default .data/), streams N
runs through its HTTP API with the official SDK, and reads its log: the time its lifespan took
to open the services, and every "Slow graph load" line (it writes one for any graph access over
100 ms, so none means every run's graph load was under that). Then times the factory itself in
this process: its first call (which opens the services when no lifespan did) and later calls.
Prints the figures and writes bench/results/studio.json.

    .venv/bin/python -m bench.studio [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from langgraph_sdk import get_client

from core.settings import get_settings
from devtools import studio
from devtools.langgraph_dev import langgraph_dev
from devtools.processes import clean_environment

QUESTIONS = [
    "Comment automatiser mes emails de bienvenue ?",
    "Aide-moi à créer un reel viral sur Instagram",
    "Comment configurer SPF, DKIM et DMARC ?",
    "Je veux parler à un conseiller",
]


async def dev_server_figures(runs: int) -> dict[str, Any]:
    """Start-up, per-run latency and slow graph loads of the real dev server."""
    settings = get_settings()
    # The dev server runs elsewhere (its own working directory): pass the settings it must share.
    env = clean_environment(
        DATA_DIR=str(settings.data_dir.resolve()), KNOWLEDGE_DIR=str(settings.knowledge_dir)
    )
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        async with langgraph_dev(Path(workdir), env, ready_within=900) as server:
            ready = time.perf_counter() - started
            latencies: list[float] = []
            async with get_client(url=server.url, api_key=None, timeout=120) as client:
                for index in range(runs):
                    thread = await client.threads.create()
                    graph_input: dict[str, Any] = {
                        "messages": [{"role": "human", "content": QUESTIONS[index % 4]}]
                    }
                    begin = time.perf_counter()
                    async for part in client.runs.stream(
                        thread["thread_id"], "chat", input=graph_input, stream_mode="custom"
                    ):
                        if part.event == "error":
                            raise RuntimeError(f"run failed: {part.data}")
                    latencies.append(time.perf_counter() - begin)
            log = server.output()
    opened = re.search(r"services opened in ([\d.]+) s", log)
    slow = [float(ms) for ms in re.findall(r"Accessing graph 'chat' took ([\d.]+)ms", log)]
    return {
        "ready_seconds": round(ready, 2),
        "services_open_seconds": float(opened.group(1)) if opened else None,
        "first_run_seconds": round(latencies[0], 3),
        "later_runs_p50_seconds": round(statistics.median(latencies[1:]), 3),
        "slow_graph_loads_ms": slow,
    }


async def factory_figures(calls: int) -> dict[str, Any]:
    """The factory in this process: first call (opens the services), then later calls."""
    begin = time.perf_counter()
    await studio.make_graph()
    first = time.perf_counter() - begin
    later: list[float] = []
    for _ in range(calls):
        begin = time.perf_counter()
        await studio.make_graph()
        later.append(time.perf_counter() - begin)
    await studio.shared.close()
    return {
        "factory_first_call_seconds": round(first, 2),
        "factory_later_call_max_ms": round(max(later) * 1000, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    figures = {**await dev_server_figures(max(2, args.runs)), **await factory_figures(20)}
    print(json.dumps(figures, indent=2))
    out = Path(__file__).parent / "results" / "studio.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
