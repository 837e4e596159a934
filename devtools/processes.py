"""Run the server (or the fake provider) in its own process, as production does: for the
tests that kill a worker, the load and soak tools, and the benchmarks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from core.settings import ROOT, Settings


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**settings: str) -> dict[str, str]:
    """This process's environment without any of the app's settings, plus `settings`: what a
    child server reads is exactly what the caller chose (and no `.env` applies over it)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(settings)
    return env


class ServerProcess:
    """`python -m cli serve` (or any module) in a child process, on HOST:PORT from `env`."""

    def __init__(
        self,
        env: Mapping[str, str],
        command: Sequence[str] = ("-m", "cli", "serve"),
        health_path: str = "/health",
        *,
        cwd: Path = ROOT,
        log: Path | None = None,
    ):
        """`log`: a file for everything the child prints (a temporary one by default). Never a
        pipe: a child that logs more than a pipe holds would block on its next write."""
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.env = dict(env)
        self._health = health_path
        if log is None:
            handle, name = tempfile.mkstemp(prefix="chatbot-server-", suffix=".log")
            os.close(handle)
            log = Path(name)
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, *command],
                cwd=cwd,
                env=dict(env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    async def ready(self, within: float = 180) -> None:
        """Wait until the health route answers 200 (raises with the child's output if it died)."""
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server exited ({self.process.returncode}): {self.output()[-3000:]}"
                    )
                try:
                    if (await client.get(f"{self.url}{self._health}")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)
        raise TimeoutError(f"{self.url} was not ready within {within} s")

    def output(self) -> str:
        """What the child has printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """`kill -9`: no shutdown, no cleanup, as a crash."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM and wait (uvicorn finishes its requests), then kill if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
