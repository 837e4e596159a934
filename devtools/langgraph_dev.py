"""`langgraph dev` (LangGraph Studio's local server) in a child process on a loopback port.

Started as a developer starts it (the real CLI, `langgraph.json`, no `--allow-blocking`) and
offline; for the Studio test and the Studio benchmark.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from core.settings import ROOT
from devtools.processes import ServerProcess, free_port

# No usage analytics, no version check, no tracing: nothing leaves the machine.
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


@asynccontextmanager
async def langgraph_dev(
    workdir: Path, env: Mapping[str, str], ready_within: float = 240
) -> AsyncIterator[ServerProcess]:
    """Run it until the block exits, then stop it (SIGTERM: it shuts down, lifespan included).

    `workdir` is its working directory, so its threads (`.langgraph_api/`) and its log stay out
    of the checkout; `env` is its environment (see `devtools.processes.clean_environment`).
    """
    port = free_port()
    server = ServerProcess(
        {**env, **OFFLINE_ENV, "PORT": str(port), "PYTHONUNBUFFERED": "1"},
        command=(
            *("-m", "langgraph_cli", "dev", "--no-browser", "--no-reload"),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--config", str(ROOT / "langgraph.json")),
        ),
        health_path="/ok",
        cwd=workdir,
        log=workdir / "langgraph-dev.log",
    )
    try:
        try:
            await server.ready(ready_within)
        except TimeoutError as error:
            raise RuntimeError(f"{error}:\n{server.output()[-5000:]}") from None
        yield server
    finally:
        server.stop()
