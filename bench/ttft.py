"""Time to first token and total latency of the streaming endpoint, embedded default.

Starts the app on a loopback port against the embedded database (DATA_DIR, default .data/),
sends N streamed questions in sequence, prints p50/p95 and writes bench/results/ttft.json.

    make bench                     # 20 requests
    .venv/bin/python -m bench.ttft --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from core.settings import get_settings
from server import serve_in_background

QUESTIONS = [
    "Comment automatiser mes emails de bienvenue?",
    "Aide-moi à créer un reel viral sur Instagram",
    "Comment configurer SPF, DKIM et DMARC ?",
    "Quelle fréquence de publication sur LinkedIn ?",
    "Comment relancer un panier abandonné ?",
    "Donne-moi des idées de carrousel pour mon salon de coiffure",
    "Comment connecter Typeform à Brevo avec Make ?",
    "Comment écrire une bonne accroche pour un reel ?",
    "Je veux parler à un conseiller",
    "Comment faire un calendrier éditorial ?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(requests: int, port: int) -> dict[str, object]:
    settings = get_settings().model_copy(update={"rate_limit_per_minute": 0})
    ttft: list[float] = []
    total: list[float] = []
    async with (
        serve_in_background(settings, port) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        for i in range(requests + 1):
            payload = {
                "user_id": "bench",
                "conversation_id": f"bench-{time.time_ns()}",
                "message": QUESTIONS[i % len(QUESTIONS)],
            }
            started = time.perf_counter()
            first: float | None = None
            async with client.stream("POST", "/api/chat/stream", json=payload) as response:
                async for line in response.aiter_lines():
                    if first is None and line == "event: token":
                        first = time.perf_counter() - started
            elapsed = time.perf_counter() - started
            if i == 0:
                continue  # the first request warms caches; it is not counted
            ttft.append((first or elapsed) * 1000)
            total.append(elapsed * 1000)
    return {
        "requests": requests,
        "mode": settings.mode,
        "ttft_ms": {
            "p50": round(statistics.median(ttft), 1),
            "p95": round(percentile(ttft, 95), 1),
        },
        "total_ms": {
            "p50": round(statistics.median(total), 1),
            "p95": round(percentile(total, 95), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    result = asyncio.run(measure(args.requests, args.port))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "ttft.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
