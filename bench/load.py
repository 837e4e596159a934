"""Load sweep: many concurrent SSE streams against a real server, production mode on the fake
provider (fixed latencies) and embedded mode (CPU-bound e5).

    make load                                   # both sweeps, default steps
    .venv/bin/python -m bench.load --mode production --steps 1,10,100,200,500

Production: the fake provider runs in its own process with the latencies of the issue (LLM
router 300 ms, embeddings 120 ms, rerank 150 ms, LLM first token 400 ms, then 30 tokens/s) and
the server in another (one worker unless --workers). Each step opens N streams at once, one
conversation each, and records per stream the time to the first `token` event and the gaps
between token events as they reach the client, plus errors, turns/s and the server's CPU.
Embedded: the same sweep on the embedded default, with `/health` polled every 20 ms during each
step (is the event loop still responsive while e5 works?).

The client is a minimal HTTP/1.1 reader on raw sockets, so that 500 streams cost the client far
less CPU than the server it measures (both share the machine). Results: bench/results/load.json
and bench/results/load.png.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fixed_latency import LATENCIES, production_settings, start_fake_provider
from bench.report import cpu_model, percentile
from core.settings import ROOT
from devtools.processes import ServerProcess, clean_environment, free_port

RESULTS = ROOT / "bench" / "results"
QUESTIONS = [
    "Comment automatiser mes emails de bienvenue ?",
    "Aide-moi à créer un reel viral sur Instagram",
    "Comment relancer un panier abandonné par email ?",
    "Quelle fréquence de publication sur LinkedIn ?",
    "Comment configurer SPF, DKIM et DMARC ?",
    "Donne-moi des idées de carrousel pour mon salon de coiffure",
]


@dataclass
class StreamResult:
    ok: bool
    ttft_ms: float | None = None
    total_ms: float | None = None
    gaps_ms: list[float] = field(default_factory=list)
    error: str | None = None


def _error_code(lines: bytes) -> str:
    """The `code` of the first error event in `lines` (the API's SSE contract)."""
    after = lines[lines.index(b"event: error") :]
    for line in after.splitlines():
        if line.startswith(b"data: "):
            try:
                return str(json.loads(line[6:]).get("code", "?"))
            except ValueError:
                break
    return "?"


async def sse_stream(port: int, payload: dict[str, Any], within: float) -> StreamResult:
    """POST /api/chat/stream on a raw socket; time the token events as they arrive."""
    body = json.dumps(payload).encode()
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), within)
    except (OSError, TimeoutError) as exc:
        return StreamResult(False, error=f"connect: {exc!r}")
    writer.write(
        b"POST /api/chat/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: text/event-stream\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    token_times: list[float] = []
    buffer = b""
    status = b""
    ended = False
    error_code: str | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                now = time.perf_counter()
                buffer += data
                if not status:
                    head, sep, _ = buffer.partition(b"\r\n")
                    if sep:
                        status = head
                # Count whole lines only; keep a partial line for the next read.
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    continue
                complete, buffer = buffer[: cut + 1], buffer[cut + 1 :]
                token_times.extend([now] * complete.count(b"event: token"))
                ended = ended or b"event: end" in complete
                if error_code is None and b"event: error" in complete:
                    error_code = _error_code(complete)
    except TimeoutError:
        return StreamResult(False, error="timeout")
    except OSError as exc:
        return StreamResult(False, error=f"read: {exc!r}")
    finally:
        writer.close()
    if b" 200 " not in status:
        return StreamResult(False, error=status.decode(errors="replace") or "no response")
    if error_code is not None or not ended or not token_times:
        return StreamResult(False, error=f"error event: {error_code}" if error_code else "no end")
    return StreamResult(
        True,
        ttft_ms=(token_times[0] - started) * 1000,
        total_ms=(time.perf_counter() - started) * 1000,
        gaps_ms=[(b - a) * 1000 for a, b in itertools.pairwise(token_times)],
    )


async def poll_health(url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                await client.get(f"{url}/health")
                latencies.append((time.perf_counter() - started) * 1000)
            except httpx.HTTPError:
                latencies.append(10_000.0)
            await asyncio.sleep(0.02)


def _processes(
    server: ServerProcess, fake: ServerProcess | None
) -> dict[str, list[psutil.Process]]:
    """Who uses the machine during a step: the server (and its workers), the database (a
    daemon, not the server's child), the fake provider and this client."""
    root = psutil.Process(server.process.pid)
    data_dir = server.env.get("DATA_DIR", "")
    database: list[psutil.Process] = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "postgres" and data_dir and data_dir in cmdline:
            database = [process, *process.children(recursive=True)]  # postmaster, backends
            break
    return {
        "server": [root, *root.children(recursive=True)],
        "postgres": database,
        "fake_provider": [psutil.Process(fake.process.pid)] if fake is not None else [],
        "client": [psutil.Process()],
    }


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


async def run_step(
    server: ServerProcess,
    port: int,
    streams: int,
    tag: str,
    within: float,
    health: bool,
    fake: ServerProcess | None = None,
) -> dict[str, Any]:
    watched = _processes(server, fake)
    before = {name: _cpu_seconds(group) for name, group in watched.items()}
    process = psutil.Process(server.process.pid)
    children = process.children(recursive=True)
    cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in [process, *children])
    stop = asyncio.Event()
    health_ms: list[float] = []
    poller = asyncio.create_task(poll_health(server.url, stop, health_ms)) if health else None
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            sse_stream(
                port,
                {
                    "user_id": f"load-{tag}-{i}",
                    "conversation_id": f"load-{tag}-{streams}-{i}",
                    "message": QUESTIONS[i % len(QUESTIONS)],
                },
                within,
            )
            for i in range(streams)
        )
    )
    wall = time.perf_counter() - started
    stop.set()
    if poller is not None:
        await poller
    cpu_after = sum(p.cpu_times().user + p.cpu_times().system for p in [process, *children])
    ok = [r for r in results if r.ok]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    gaps = [g for r in ok for g in r.gaps_ms]
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    step = {
        "streams": streams,
        "errors": len(results) - len(ok),
        "error_kinds": errors,
        "ttft_ms_p50": rounded(statistics.median(ttft) if ttft else None),
        "ttft_ms_p95": rounded(percentile(ttft, 95)),
        "token_gap_ms_p50": rounded(percentile(gaps, 50)),
        "token_gap_ms_p95": rounded(percentile(gaps, 95)),
        "turns_per_second": round(len(ok) / wall, 2),
        "wall_seconds": round(wall, 2),
        "server_cpu_percent": round(100 * (cpu_after - cpu_before) / wall, 1),
        # The server's CPU time over the step per turn served: what one turn costs the worker.
        "server_cpu_ms_per_turn": round(1000 * (cpu_after - cpu_before) / len(ok), 1)
        if ok
        else None,
        # 100 = one core; the machine has psutil.cpu_count() of them.
        "cpu_percent_by_process": {
            name: round(100 * (_cpu_seconds(group) - before[name]) / wall, 1)
            for name, group in watched.items()
        },
    }
    if health:
        step["health_ms_p50"] = rounded(percentile(health_ms, 50))
        step["health_ms_p95"] = rounded(percentile(health_ms, 95))
        step["health_samples"] = len(health_ms)
    print(json.dumps(step), flush=True)
    return step


async def sweep(
    mode: str,
    steps: list[int],
    workers: int,
    fresh: bool,
    overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    data_dir = ROOT / f".data-load-{mode}"
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    port = free_port()
    env = clean_environment(
        DATA_DIR=str(data_dir),
        PORT=str(port),
        WORKERS=str(workers),
        LOG_LEVEL="warning",
        RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(overrides or {})
    fake: ServerProcess | None = None
    if mode == "production":
        fake = start_fake_provider()
        await fake.ready()
        env.update(production_settings(fake.url))
    server = ServerProcess(env)
    print(f"{mode} server log: {server.log}", flush=True)
    try:
        await server.ready(within=600)
        # Warm-up: caches, connections, the first embeddings; not measured.
        for i in range(3):
            await sse_stream(
                port,
                {
                    "user_id": "warm",
                    "conversation_id": f"warm-{i}-{time.time_ns()}",
                    "message": QUESTIONS[i],
                },
                120,
            )
        tag = f"{mode}-{time.time_ns()}"
        results = [
            await run_step(server, port, n, tag, within=300, health=mode == "embedded", fake=fake)
            for n in steps
        ]
    finally:
        server.stop()
        if fake is not None:
            fake.stop()
    return {"mode": mode, "workers": workers, "settings": overrides or {}, "steps": results}


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = report["sweeps"]
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.5 * len(sweeps), 4.5), squeeze=False)
    for ax, result in zip(axes[0], sweeps, strict=True):
        steps = result["steps"]
        x = [s["streams"] for s in steps]
        ax.plot(x, [s["ttft_ms_p50"] for s in steps], "o-", label="TTFT p50")
        ax.plot(x, [s["ttft_ms_p95"] for s in steps], "o--", label="TTFT p95")
        ax.plot(x, [s["token_gap_ms_p95"] for s in steps], "s-", label="token gap p95")
        if result["mode"] == "embedded":
            ax.plot(x, [s.get("health_ms_p95") for s in steps], "^-", label="/health p95")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("ms")
        ax.set_title(f"{result['mode']} ({result['workers']} worker)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["production", "embedded", "both"], default="both")
    parser.add_argument("--steps", default="1,10,100,200,500", help="production streams")
    parser.add_argument("--embedded-steps", default="1,10,50,100,200")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fresh", action="store_true", help="start from an empty database")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server (e.g. MAX_RUNNING_TURNS=8), repeatable",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    sweeps: list[dict[str, Any]] = []
    if args.mode in ("production", "both"):
        steps = [int(s) for s in args.steps.split(",")]
        sweeps.append(asyncio.run(sweep("production", steps, args.workers, args.fresh, overrides)))
    if args.mode in ("embedded", "both"):
        steps = [int(s) for s in args.embedded_steps.split(",")]
        sweeps.append(asyncio.run(sweep("embedded", steps, args.workers, args.fresh, overrides)))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": psutil.cpu_count(), "model": cpu_model()},
        "latencies": LATENCIES.as_dict(),
        "sweeps": sweeps,
    }
    for result in sweeps:
        if result["mode"] == "production":
            report["targets"] = _targets(result["steps"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    plot(report, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _targets(steps: list[dict[str, Any]]) -> dict[str, Any]:
    by = {s["streams"]: s for s in steps}
    single = by.get(1, {}).get("ttft_ms_p50")
    result: dict[str, Any] = {}
    if 200 in by and single:
        result["ttft_p50_200_over_single"] = round(by[200]["ttft_ms_p50"] / single, 3)
        result["gap_p95_200_ms"] = by[200]["token_gap_ms_p95"]
        result["errors_200"] = by[200]["errors"]
    if 500 in by:
        result["gap_p95_500_ms"] = by[500]["token_gap_ms_p95"]
        result["errors_500"] = by[500]["errors"]
    return result


if __name__ == "__main__":
    main()
