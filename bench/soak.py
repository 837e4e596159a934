"""Fault soak: many turns under random faults, then an audit of the database.

    make soak                                   # 1,100 turns over 120 conversations
    .venv/bin/python -m bench.soak --turns 2000 --conversations 200

Production mode on the project's fake provider (in this process) and a real server (its own
process, embedded Postgres under .data-soak/). While clients talk, faults are injected at
random: provider 429 and 500, timeouts, a stream cut mid-answer, embedding and rerank errors,
clients that leave mid-stream, and, once each, a Postgres restart and a `kill -9` of the server
(started again at once). Then, once every lease has expired and the sweep has run, the audit
(`devtools/audit.py`) checks every promise, and every message the server accepted (its stream
began with `metadata`) is looked up. Writes bench/results/soak.json; exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from core.settings import ROOT, Settings
from devtools.audit import Violation, audit
from devtools.fake_provider import FakeConfig, fake_provider
from devtools.processes import ServerProcess, clean_environment, free_port
from services import open_services
from store.postgres import start_embedded, stop_embedded

RESULTS = ROOT / "bench" / "results"
LLM, FALLBACK, EMBEDDINGS, RERANK = (
    "soak/llm",
    "soak/fallback",
    "text-embedding-3-small",
    "rerank-multilingual-v3.0",
)
QUESTIONS = [
    "Comment automatiser mes emails de bienvenue ?",
    "Aide-moi à créer un reel viral sur Instagram",
    "Comment relancer un panier abandonné ?",
    "Quelle fréquence de publication sur LinkedIn ?",
    "Je veux être remboursée de ma formation",
    "et pour le délai ?",
    "merci, plus court stp",
]
ADMIN_TOKEN = "soak-admin"
# Fault kind -> (model it targets, fake fault); drawn at random while clients talk.
FAULTS = {
    "llm_429": (LLM, "429"),
    "llm_500": (LLM, "500"),
    "llm_timeout": (LLM, "timeout"),
    "llm_cut_mid_stream": (LLM, "cut:4"),
    "router_500": (LLM, "500"),
    "embeddings_500": (EMBEDDINGS, "500"),
    "embeddings_429": (EMBEDDINGS, "429"),
    "rerank_500": (RERANK, "500"),
    "rerank_timeout": (RERANK, "timeout"),
}


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rng = random.Random(args.seed)
        self.data_dir = ROOT / ".data-soak"
        self.accepted: list[str] = []
        self.outcomes: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.events: list[str] = []
        self.server: ServerProcess | None = None
        self.env: dict[str, str] = {}

    def _env(self, fake_url: str, port: int) -> dict[str, str]:
        return clean_environment(
            DATA_DIR=str(self.data_dir),
            PORT=str(port),
            LOG_LEVEL="error",
            RATE_LIMIT_PER_MINUTE="0",
            OPENROUTER_API_KEY="soak",
            OPENROUTER_BASE_URL=f"{fake_url}/v1",
            LLM_MODEL=LLM,
            LLM_FALLBACK_MODELS=FALLBACK,
            ROUTER_MODEL=LLM,
            LLM_MAX_RETRIES="0",
            LLM_FIRST_TOKEN_TIMEOUT_SECONDS="2",
            LLM_TIMEOUT_SECONDS="10",
            ROUTER_TIMEOUT_SECONDS="2",
            OPENAI_API_KEY="soak",
            OPENAI_BASE_URL=f"{fake_url}/v1",
            EMBEDDING_DIMENSIONS="256",
            EMBEDDING_TIMEOUT_SECONDS="2",
            COHERE_API_KEY="soak",
            COHERE_BASE_URL=fake_url,
            RERANK_TIMEOUT_SECONDS="2",
            TURN_LEASE_SECONDS="3",
            DRAFT_FLUSH_SECONDS="0.5",
            DB_TIMEOUT_SECONDS="2",
            ADMIN_TOKEN=ADMIN_TOKEN,
        )

    async def turn(self, client: httpx.AsyncClient, conversation: str, user: str) -> None:
        """One message; while the server is down (killed, restarting), the user tries again a
        little later, as someone would, so the soak's turns reach the server."""
        for _ in range(60):
            try:
                await self._turn(client, conversation, user)
                return
            except httpx.ConnectError:
                self.outcomes["refused_then_retried"] += 1
                await asyncio.sleep(0.5)
        self.outcomes["refused"] += 1

    async def _turn(self, client: httpx.AsyncClient, conversation: str, user: str) -> None:
        assert self.server is not None
        leave_after = self.rng.randint(1, 6) if self.rng.random() < 0.08 else None
        payload = {
            "user_id": user,
            "conversation_id": conversation,
            "message": self.rng.choice(QUESTIONS),
        }
        tokens = 0
        try:
            async with client.stream(
                "POST", f"{self.server.url}/api/chat/stream", json=payload
            ) as response:
                if response.status_code != 200:
                    self.outcomes[f"http_{response.status_code}"] += 1
                    return
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and '"user_message_id"' in line:
                        self.accepted.append(json.loads(line[6:])["user_message_id"])
                    elif line == "event: token":
                        tokens += 1
                        if leave_after is not None and tokens >= leave_after:
                            self.outcomes["client_left"] += 1
                            return
                    elif line == "event: end":
                        self.outcomes["end"] += 1
                    elif line == "event: error":
                        self.outcomes["error_event"] += 1
        except httpx.ConnectError:
            raise
        except httpx.HTTPError as exc:
            self.outcomes[f"transport_{type(exc).__name__}"] += 1

    async def conversation(self, index: int, turns: int) -> None:
        user = f"soak-user-{index % 40}"
        conversation = f"soak-{index}-{self.args.seed}"
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, connect=5)) as client:
            for _ in range(turns):
                if self.rng.random() < 0.05:  # double texting
                    await asyncio.gather(
                        self.turn(client, conversation, user), self.turn(client, conversation, user)
                    )
                else:
                    await self.turn(client, conversation, user)
                await asyncio.sleep(self.rng.random() * 0.2)

    async def inject(self, fake: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            kind = self.rng.choice(list(FAULTS))
            model, fault = FAULTS[kind]
            fake.script(model, faults=[fault])
            self.faults[kind] += 1

    async def team(self, stop: asyncio.Event) -> None:
        """The agency's team: answers some open hand-offs and gives every one back to the bot,
        so escalated conversations go on being served (and the hand-off path is soaked too)."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as client:
            while not stop.is_set():
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))
                assert self.server is not None
                base = f"{self.server.url}/api/admin/handoffs"
                try:
                    listed = await client.get(base)
                    if listed.status_code != 200:
                        continue
                    for handoff in listed.json():
                        if self.rng.random() < 0.5:
                            replied = await client.post(
                                f"{base}/{handoff['id']}/messages",
                                json={"content": "Bonjour, je prends le relais.", "author": "Léa"},
                            )
                            self.outcomes[f"team_reply_{replied.status_code}"] += 1
                        released = await client.post(f"{base}/{handoff['id']}/release")
                        self.outcomes[f"team_release_{released.status_code}"] += 1
                except httpx.HTTPError:
                    self.outcomes["team_unreachable"] += 1

    async def disasters(self, stop: asyncio.Event, duration_hint: float) -> None:
        """One Postgres restart, then one kill -9 of the server (started again)."""
        await asyncio.sleep(duration_hint * 0.3)
        if stop.is_set():
            return
        self.events.append(f"{time.monotonic():.1f} postgres stop")
        await asyncio.to_thread(stop_embedded, self.data_dir)
        await asyncio.sleep(3)
        await asyncio.to_thread(start_embedded, self.data_dir)
        self.events.append(f"{time.monotonic():.1f} postgres started")
        await asyncio.sleep(duration_hint * 0.3)
        if stop.is_set():
            return
        assert self.server is not None
        self.server.kill()
        self.events.append(f"{time.monotonic():.1f} server killed")
        self.server = ServerProcess(self.env)
        await self.server.ready(within=300)
        self.events.append(f"{time.monotonic():.1f} server back")

    async def run(self) -> dict[str, Any]:
        if self.args.fresh and self.data_dir.exists():
            stop_embedded(self.data_dir)
            shutil.rmtree(self.data_dir)
        config = FakeConfig(
            ttft_ms=150,
            token_delay_ms=10,
            completion_ms=50,
            embedding_delay_ms=20,
            rerank_delay_ms=30,
            embedding_dimensions=256,
        )
        async with fake_provider(config) as fake:
            self.env = self._env(fake.url, free_port())
            self.server = ServerProcess(self.env)
            await self.server.ready(within=600)
            started = time.monotonic()
            stop = asyncio.Event()
            per = max(1, self.args.turns // self.args.conversations)
            injector = asyncio.create_task(self.inject(fake, stop))
            disasters = asyncio.create_task(self.disasters(stop, self.args.duration_hint))
            team = asyncio.create_task(self.team(stop))
            semaphore = asyncio.Semaphore(self.args.concurrency)

            async def one(index: int) -> None:
                async with semaphore:
                    await self.conversation(index, per)

            await asyncio.gather(*(one(i) for i in range(self.args.conversations)))
            stop.set()
            await disasters
            await team
            injector.cancel()
            elapsed = time.monotonic() - started
            fake.reset()
            # Quiesce: every lease expires (3 s) and a sweep runs (every 3 s).
            await asyncio.sleep(8)
            self.server.stop()
        settings = Settings(
            _env_file=None,
            data_dir=self.data_dir,
            ingest_on_start=False,
            openai_api_key="soak",
            embedding_dimensions=256,
        )
        async with open_services(settings) as services:
            report = await audit(services.pool, services.graph)
            missing = await _missing(services.pool, self.accepted)
        stop_embedded(self.data_dir)
        result = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "turns_attempted": sum(self.outcomes.values()),
            "conversations": self.args.conversations,
            "seconds": round(elapsed, 1),
            "accepted": len(self.accepted),
            "accepted_not_found_once": missing,
            "outcomes": dict(self.outcomes),
            "faults_injected": dict(self.faults),
            "disasters": self.events,
            "user_messages_by_status": report.user_messages,
            "violations": report.counts(),
            "violation_examples": _examples(report.violations),
        }
        result["ok"] = report.ok and not missing
        return result


def _examples(violations: list[Violation], per_kind: int = 5) -> list[dict[str, Any]]:
    """A few violations of each kind (one kind must not hide the others)."""
    seen: Counter[str] = Counter()
    kept: list[dict[str, Any]] = []
    for violation in violations:
        seen[violation.kind] += 1
        if seen[violation.kind] <= per_kind:
            kept.append(violation.model_dump())
    return kept


async def _missing(pool: Any, accepted: list[str]) -> list[str]:
    """Accepted message ids not stored exactly once as a user row."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select id::text as id from messages where id = any(%s) and role = 'user'",
            ([UUID(a) for a in accepted],),
        )
        found = Counter(row["id"] for row in await cur.fetchall())
    return [a for a in accepted if found[a] != 1] + [
        a for a, n in Counter(accepted).items() if n > 1
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1100)
    parser.add_argument("--conversations", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--duration-hint",
        type=float,
        default=40.0,
        help="seconds; the disasters happen at 30% and 60% of it",
    )
    parser.add_argument("--fresh", action="store_true", help="start from an empty database")
    parser.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = parser.parse_args()
    result = asyncio.run(Soak(args).run())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
