"""What a streamed token costs the server, and what the rest of a turn costs.

    .venv/bin/python -m bench.token_cost

Production mode on the fake provider with the load sweep's latencies (`bench/fixed_latency.py`),
one worker, 40 conversations in a closed loop (each sends its next message when its answer
ends) for 25 s per measure. The fake answers every turn with the same scripted text, first of
1 token, then of 61; two rounds. The server's CPU per turn at 1 token is the turn's fixed cost
(route, search, rerank, the answer's request, checkpoints, saves); the difference divided by 60
is the cost of one token on its way from the provider's stream to the widget's SSE. Why it
matters: on one event loop, the token gap under load is the fixed work of the turns starting
and ending, queued in front of every stream's next token (README, "Load"). Writes
`bench/results/token_cost.json`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil

from bench.fixed_latency import LATENCIES, production_settings, start_fake_provider
from bench.load import QUESTIONS, RESULTS, sse_stream
from bench.report import cpu_model
from core.settings import ROOT
from devtools.processes import ServerProcess, clean_environment, free_port

CONVERSATIONS = 40
SECONDS = 25.0
LENGTHS = (1, 61)
ROUNDS = 2


async def _closed_loop(port: int, process: psutil.Process, tag: str) -> tuple[float, int]:
    """Server CPU ms per turn over `SECONDS` of `CONVERSATIONS` closed-loop conversations."""
    done = 0
    stop = time.perf_counter() + SECONDS

    async def conversation(c: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            payload = {
                "user_id": f"cost-{c}",
                "conversation_id": f"cost-{tag}-{c}-{i}",
                "message": QUESTIONS[(c + i) % len(QUESTIONS)],
            }
            result = await sse_stream(port, payload, 60)
            if not result.ok:
                raise RuntimeError(f"turn failed: {result.error}")
            done += 1
            i += 1

    before = sum(process.cpu_times()[:2])
    await asyncio.gather(*(conversation(c) for c in range(CONVERSATIONS)))
    return 1000 * (sum(process.cpu_times()[:2]) - before) / done, done


async def measure() -> dict[str, Any]:
    fake = start_fake_provider()
    await fake.ready()
    port = free_port()
    env = clean_environment(
        DATA_DIR=str(ROOT / ".data-load-production"),
        PORT=str(port),
        WORKERS="1",
        LOG_LEVEL="warning",
        RATE_LIMIT_PER_MINUTE="0",
    )
    env.update(production_settings(fake.url))
    server = ServerProcess(env)
    runs: list[dict[str, Any]] = []
    try:
        await server.ready(within=600)
        process = psutil.Process(server.process.pid)
        async with httpx.AsyncClient(base_url=fake.url) as http:
            for round_ in range(ROUNDS):
                for tokens in LENGTHS:
                    script = {
                        "model": env["LLM_MODEL"],
                        "text": " ".join(["mot"] * tokens),
                        # The LLM router is the same model: keep its answer structured.
                        "decision": {"route": "carole", "confidence": 0.9, "reason": "bench"},
                    }
                    (await http.post("/_fake/script", json=script)).raise_for_status()
                    cpu_ms, turns = await _closed_loop(port, process, f"{time.time_ns()}")
                    run = {"round": round_, "tokens": tokens, "turns": turns, "cpu_ms": cpu_ms}
                    print(json.dumps(run), flush=True)
                    runs.append(run)
    finally:
        server.stop()
        fake.stop()

    def mean_cpu(tokens: int) -> float:
        values = [float(r["cpu_ms"]) for r in runs if r["tokens"] == tokens]
        return sum(values) / len(values)

    short, long = (mean_cpu(n) for n in LENGTHS)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(),
        "latencies": LATENCIES.as_dict(),
        "conversations": CONVERSATIONS,
        "seconds_per_measure": SECONDS,
        "runs": [{**r, "cpu_ms": round(r["cpu_ms"], 2)} for r in runs],
        "turn_cpu_ms_at_1_token": round(short, 2),
        "token_cpu_ms": round((long - short) / (LENGTHS[1] - LENGTHS[0]), 3),
    }


def main() -> None:
    report = asyncio.run(measure())
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "token_cost.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("turn_cpu_ms_at_1_token", "token_cpu_ms")}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
