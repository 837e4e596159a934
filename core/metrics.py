"""The process's Prometheus metrics, defined once: providers, turns and the API record them.

They live on the ground floor because every layer records some of them. `GET /metrics` exposes
them (`api/routes/metrics.py`). With several worker processes (WORKERS), each worker writes its
values under PROMETHEUS_MULTIPROC_DIR and a scrape sums them (prometheus-client's multiprocess
mode): `share_between_workers` sets it up before the workers start.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import Counter, Histogram

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def share_between_workers(folder: Path) -> None:
    """Before starting worker processes: each will record into `folder` (emptied now, so a
    restart starts from zero), unless PROMETHEUS_MULTIPROC_DIR is already set."""
    if os.environ.get(MULTIPROCESS_DIR):
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(folder.resolve())


# Seconds: the seed's target is an answer in under 5 s, so the buckets are finest around it.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)

TURNS = Counter(
    "chatbot_turns",
    "Chat turns, by who answered (audrey, carole, escalate, none) and how the turn ended "
    "(complete, interrupted, failed, held: a message kept for the team during a hand-off).",
    ["agent", "status"],
)
FIRST_TOKEN_SECONDS = Histogram(
    "chatbot_first_token_seconds",
    "Time from the user's message to the first token of the answer.",
    ["agent"],
    buckets=LATENCY_BUCKETS,
)
TURN_SECONDS = Histogram(
    "chatbot_turn_seconds",
    "Time from the user's message to the end of the turn (answer saved).",
    ["agent", "status"],
    buckets=LATENCY_BUCKETS,
)
PROVIDER_ERRORS = Counter(
    "chatbot_provider_errors",
    "Failed calls to a provider (router, rerank, generator), by role and provider/model.",
    ["role", "provider"],
)
PROVIDER_FALLBACKS = Counter(
    "chatbot_provider_fallbacks",
    "Times a role was served by its fallback after an error: the embedding router for the LLM "
    "router, retrieval order for the reranker, the next model for the generator.",
    ["role"],
)
RATE_LIMITED = Counter(
    "chatbot_rate_limited_requests",
    "Requests refused with 429 (too many messages), by route.",
    ["route"],
)
HANDOFFS_OPENED = Counter(
    "chatbot_handoffs_opened",
    "Conversations handed to a person.",
)
HANDOFF_WEBHOOKS = Counter(
    "chatbot_handoff_webhook_attempts",
    "Hand-off webhook POSTs, by outcome (delivered, retry, failed).",
    ["outcome"],
)
