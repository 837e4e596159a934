"""`langgraph dev` (LangGraph Studio's local server) in the background, on a loopback port.

Started the way a developer starts it (the real CLI, `langgraph.json`, no `--allow-blocking`),
offline; shared by the Studio test and the Studio benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from core.settings import ROOT

# No usage analytics, no version check, no tracing: nothing leaves the machine.
OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}


@dataclass(frozen=True)
class DevServer:
    url: str
    log: Path

    def log_text(self) -> str:
        """Everything the server printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@asynccontextmanager
async def langgraph_dev(
    workdir: Path, env: Mapping[str, str] | None = None, ready_timeout: float = 240
) -> AsyncIterator[DevServer]:
    """Run `langgraph dev` on a free loopback port until the block exits, then stop it as
    Ctrl-C does.

    `workdir` is its working directory (it keeps its threads in `.langgraph_api/` there) and
    holds its log; `env` adds to this process's environment (e.g. DATA_DIR).
    """
    port = _free_port()
    server = DevServer(f"http://127.0.0.1:{port}", workdir / "langgraph-dev.log")
    command = [
        str(Path(sys.executable).with_name("langgraph")),
        "dev",
        "--no-browser",
        "--no-reload",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(ROOT / "langgraph.json"),
    ]
    full_env = {**os.environ, **OFFLINE_ENV, "PYTHONUNBUFFERED": "1", **(env or {})}
    with server.log.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=workdir, env=full_env, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:
        try:
            async with asyncio.timeout(ready_timeout):
                await _wait_until_ready(process, server)
        except TimeoutError:
            raise RuntimeError(
                f"langgraph dev not ready after {ready_timeout} s:\n{server.log_text()[-5000:]}"
            ) from None
        yield server
    finally:
        if process.returncode is None:
            # SIGINT, as Ctrl-C: the server runs its shutdown, and so the graph's lifespan.
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_until_ready(process: asyncio.subprocess.Process, server: DevServer) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            if process.returncode is not None:
                raise RuntimeError(
                    f"langgraph dev exited ({process.returncode}):\n{server.log_text()[-5000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{server.url}/ok")).status_code == 200:
                    return
            await asyncio.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
