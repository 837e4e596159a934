"""Time to first token against the ideal critical path, the v1 design and LangGraph's own server.

    .venv/bin/python -m bench.ttft_ideal                 # 60 turns each (make bench)
    .venv/bin/python -m bench.ttft_ideal --turns 50 --no-peer

Production mode on the fake provider with the fixed latencies of `bench.fixed_latency` (LLM
router 300 ms, embeddings 120 ms, rerank 150 ms, LLM first token 400 ms, 30 tokens/s). Three
systems answer the same distinct questions (eval datasets' messages the fake routes to a
specialist, so every turn reaches the LLM), one turn at a time, interleaved so that the
machine's noise falls on all of them alike, each turn a new conversation:

- **ours**: `python -m cli serve`, streamed over SSE; first visible text = first `token` event;
- **v1**: `bench.v1_baseline`, the same steps one after the other and one JSON at the end;
  first visible text = the end of that response;
- **peer**: the same graph under `langgraph dev` (`langgraph.json`), streamed by its run API
  (`stream_mode=custom`); first visible text = its first `token` chunk.

All three are timed by one client (a raw HTTP/1.1 reader: the same cost for each).

The ideal time to first token is `max(router, embeddings + search) + rerank + first token`,
with `search` measured here on the same database (the retrieve node's three scoped searches at
once, on the pool, with the fake's query vectors). Each of our turns' node records
(`graph_runs`) splits its time into named segments, so the overhead over the ideal has names;
the waterfall PNG draws the median turn. Results: bench/results/ttft_ideal.json and
bench/results/ttft_waterfall.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import HumanMessage

from bench.fixed_latency import (
    DIMENSIONS,
    LATENCIES,
    Latencies,
    production_settings,
    start_fake_provider,
)
from bench.report import RESULTS, machine, now, percentile, rounded, spread, write_json
from bench.retrieval import questions
from core.settings import ROOT, get_settings
from devtools.fake_provider import decide_route, embed
from devtools.langgraph_dev import langgraph_dev
from devtools.processes import ServerProcess, clean_environment, free_port
from graph.conversation import search_text
from nodes.retrieve import SEARCH_SCOPES
from providers.router import explicit_escalation
from store import documents
from store.documents import SearchTuning
from store.postgres import open_pool, start_embedded
from store.runs import RunRow, list_runs

log = logging.getLogger(__name__)

DATA_DIR = ROOT / ".data-bench-ttft"
WARM_UP = 3
SPECIALISTS = ("audrey", "carole")


def specialist_questions(count: int) -> list[str]:
    """Distinct questions the fake router sends to a specialist (never a cached embedding, and
    always an LLM answer: escalations skip the generator)."""
    found = [
        q
        for q in questions()
        if decide_route(q)["route"] in SPECIALISTS and explicit_escalation(q) is None
    ]
    if len(found) < count:
        raise SystemExit(f"only {len(found)} specialist questions for {count} turns")
    return found[:count]


@dataclass(frozen=True)
class Timed:
    """One request as the client saw it (wall-clock start, for the run records)."""

    started_at: datetime
    first_text_ms: float | None
    first_byte_ms: float | None
    total_ms: float
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.first_text_ms is not None


async def post(
    port: int, path: str, payload: dict[str, Any], marker: bytes | None, within: float = 120
) -> Timed:
    """POST JSON on a raw socket and time the first visible text: the first read holding
    `marker` (a streamed token), or, when `marker` is None, the end of the response (a JSON
    answer is shown when it has all arrived). The same reader for every system measured."""
    body = json.dumps(payload).encode()
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream, application/json\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    first: float | None = None
    first_byte: float | None = None
    last = started
    try:
        async with asyncio.timeout(within):
            while data := await reader.read(65536):
                last = time.perf_counter()
                if first_byte is None:
                    first_byte = (last - started) * 1000
                # A marker split across two reads is found once the second arrives.
                tail = received[-len(marker) :] if marker else b""
                received += data
                if first is None and marker is not None and marker in tail + data:
                    first = (last - started) * 1000
    finally:
        writer.close()
    head = received.split(b"\r\n", 1)[0].split()
    status = int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
    total = (last - started) * 1000
    text_at = first if marker is not None else total
    return Timed(started_at, text_at, first_byte, total, status, received)


async def create_thread(url: str) -> str:
    """A thread of the dev server (untimed: our server creates its conversation on the fly)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/threads", json={})
        response.raise_for_status()
        return str(response.json()["thread_id"])


def _has_text(line: str) -> bool:
    """An OpenAI stream line carrying answer text (the first chunk only names the role)."""
    if not line.startswith("data: ") or line == "data: [DONE]":
        return False
    choices = json.loads(line.removeprefix("data: ")).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content"))


async def provider_floor(fake_url: str, samples: int = 10) -> dict[str, float]:
    """What each provider call costs with nothing of ours around it: a bare keep-alive HTTP
    client against the fake (p50, ms). The fake's own handling and loopback HTTP are in these,
    so `ideal + (floor - latency)` is the best any client of this fake could do."""
    question = "Comment automatiser mes emails de bienvenue ?"
    chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
    calls: dict[str, list[float]] = {"router": [], "embeddings": [], "rerank": [], "first": []}
    async with httpx.AsyncClient(base_url=fake_url, timeout=30) as client:
        for _ in range(samples):
            for name, path, body in (
                ("router", "/v1/chat/completions", chat),
                ("embeddings", "/v1/embeddings", {"model": "m", "input": question}),
                (
                    "rerank",
                    "/v2/rerank",
                    {"model": "m", "query": question, "documents": [question] * 8, "top_n": 4},
                ),
            ):
                started = time.perf_counter()
                (await client.post(path, json=body)).raise_for_status()
                calls[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with client.stream(
                "POST", "/v1/chat/completions", json={**chat, "stream": True}
            ) as response:
                async for line in response.aiter_lines():
                    if _has_text(line):
                        calls["first"].append((time.perf_counter() - started) * 1000)
                        break
    return {name: round(statistics.median(times), 1) for name, times in calls.items()}


class System:
    """One system under test: how to send it a question, and what it answered."""

    def __init__(self, name: str, port: int, url: str):
        self.name = name
        self.port = port
        self.url = url
        self.results: list[Timed] = []
        self.conversations: list[str] = []

    async def ask(self, question: str, conversation: str) -> Timed:
        payload: dict[str, Any]
        match self.name:
            case "ours":
                payload = {"user_id": "bench", "conversation_id": conversation, "message": question}
                return await post(self.port, "/api/chat/stream", payload, b"event: token")
            case "v1":
                payload = {"user_id": "bench", "conversation_id": conversation, "message": question}
                return await post(self.port, "/api/v1/chat", payload, None)
            case _:
                thread = await create_thread(self.url)
                payload = {
                    "assistant_id": "chat",
                    "input": {"messages": [{"role": "human", "content": question}]},
                    "stream_mode": ["custom"],
                }
                return await post(self.port, f"/threads/{thread}/runs/stream", payload, b'"token"')


async def search_ms(questions_asked: Sequence[str], data_dir: Path) -> list[float]:
    """The retrieve node's search (every route's scope in one statement, as it runs it) for
    each question, on the database the servers used, with the vectors the fake returned them."""
    url = await asyncio.to_thread(start_embedded, data_dir)
    pool = await open_pool(url, max_size=4)
    tuning = SearchTuning.from_settings(get_settings())
    k = get_settings().retrieve_k
    times: list[float] = []
    try:
        for attempt, question in enumerate([*questions_asked[:WARM_UP], *questions_asked]):
            query = search_text([HumanMessage(question)])
            vector = embed(query, DIMENSIONS)
            started = time.perf_counter()
            await documents.search_scopes(pool, vector, query, SEARCH_SCOPES, k, tuning)
            if attempt >= WARM_UP:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        await pool.close()
    return times


async def node_runs(data_dir: Path, conversations: Sequence[str]) -> list[list[RunRow]]:
    """Each conversation's node records, in time order."""
    url = await asyncio.to_thread(start_embedded, data_dir)
    pool = await open_pool(url, max_size=2)
    try:
        return [await list_runs(pool, c, kind="turn") for c in conversations]
    finally:
        await pool.close()


@dataclass(frozen=True)
class Segment:
    """A stretch of one turn's critical path: its name, start (ms after the request) and
    length, and what the ideal allows for it (0: pure overhead)."""

    name: str
    start_ms: float
    length_ms: float
    ideal_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.length_ms - self.ideal_ms


def segments(turn: Timed, runs: Sequence[RunRow], ideal: Latencies, search: float) -> list[Segment]:
    """One streamed turn's time to first token, cut at its node records into named segments
    that add up to the TTFT the client saw."""
    by_node = {run.node: run for run in runs}
    generator = next((by_node[n] for n in SPECIALISTS if n in by_node), None)
    needed = ("begin_turn", "route", "retrieve", "rerank")
    if generator is None or turn.first_text_ms is None or any(n not in by_node for n in needed):
        return []

    def at(moment: datetime) -> float:
        return (moment - turn.started_at) / timedelta(milliseconds=1)

    def end(run: RunRow) -> float:
        return at(run.started_at) + (run.duration_ms or 0)

    begin, route, retrieve, rerank = (by_node[n] for n in needed)
    fan_start = min(at(route.started_at), at(retrieve.started_at))
    fan_end = max(end(route), end(retrieve))
    first_token = float(generator.detail.get("first_token_ms") or 0)
    token_at = at(generator.started_at) + first_token
    marks = [
        ("request → graph (HTTP, admission, user message saved)", 0.0, at(begin.started_at), 0),
        ("begin_turn", at(begin.started_at), end(begin), 0),
        ("begin_turn → route ‖ retrieve", end(begin), fan_start, 0),
        (
            "route ‖ retrieve (LLM router ‖ embeddings + search)",
            fan_start,
            fan_end,
            max(ideal.router_ms, ideal.embeddings_ms + search),
        ),
        ("→ rerank", fan_end, at(rerank.started_at), 0),
        ("rerank", at(rerank.started_at), end(rerank), ideal.rerank_ms),
        ("→ generate", end(rerank), at(generator.started_at), 0),
        ("generate: LLM first token", at(generator.started_at), token_at, ideal.llm_first_token_ms),
        ("token → client", token_at, turn.first_text_ms, 0),
    ]
    return [Segment(name, start, stop - start, allowed) for name, start, stop, allowed in marks]


def waterfall(
    turn: Timed, runs: Sequence[RunRow], parts: Sequence[Segment], ideal_ms: float, path: Path
) -> None:
    """The median turn: every node record as a bar, the critical path's segments beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def at(moment: datetime) -> float:
        return (moment - turn.started_at) / timedelta(milliseconds=1)

    assert turn.first_text_ms is not None
    # The time to first token is the story; the rest of the answer's streaming is cut off.
    right = 1.3 * max(turn.first_text_ms, ideal_ms)
    nodes = [r for r in runs if r.duration_ms is not None]
    rows = len(nodes) + len(parts) + 1
    fig, ax = plt.subplots(figsize=(12, 0.42 * rows + 1.6))
    labels: list[str] = []
    y = 0
    for run in nodes:
        start = at(run.started_at)
        ax.barh(y, run.duration_ms or 0, left=start, color="tab:blue")
        first = run.detail.get("first_token_ms")
        if first:
            ax.barh(y, float(first), left=start, color="tab:cyan")
        ax.text(
            min(start + (run.duration_ms or 0), 0.88 * right) + 8,
            y,
            f"{run.duration_ms:.0f} ms",
            va="center",
            backgroundcolor="white",
        )
        labels.append(f"node {run.node}")
        y += 1
    for part in parts:
        colour = "tab:red" if part.ideal_ms == 0 else "tab:green"
        ax.barh(y, part.length_ms, left=part.start_ms, color=colour)
        note = f"{part.length_ms:.0f} ms" + (
            f" (ideal {part.ideal_ms:.0f}, +{part.overhead_ms:.0f})" if part.ideal_ms else ""
        )
        ax.text(part.start_ms + max(part.length_ms, 0) + 8, y, note, va="center", fontsize=8)
        labels.append(part.name)
        y += 1
    ax.barh(y, ideal_ms, color="lightgrey")
    ax.text(ideal_ms + 8, y, f"{ideal_ms:.0f} ms", va="center")
    labels.append("ideal TTFT")
    ax.axvline(turn.first_text_ms, color="black", linestyle=":", label="first token at client")
    ax.axvline(ideal_ms, color="grey", linestyle="--", label="ideal")
    ax.set_xlim(0, right)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms after the request was sent")
    ax.set_title(
        f"Median turn: first token at {turn.first_text_ms:.0f} ms, ideal {ideal_ms:.0f} ms\n"
        "blue: node records, cyan: until the LLM's first token, "
        "green: bounded by the ideal, red: overhead",
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def first_text_summary(results: Sequence[Timed]) -> dict[str, Any]:
    ok = [r.first_text_ms for r in results if r.ok and r.first_text_ms is not None]
    return {
        "first_text_ms": spread(ok),
        "first_byte_ms": spread([r.first_byte_ms for r in results if r.ok and r.first_byte_ms]),
        "total_ms": spread([r.total_ms for r in results if r.ok]),
        "errors": sum(not r.ok for r in results),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    asked = specialist_questions(WARM_UP + args.turns)
    warm, measured = asked[:WARM_UP], asked[WARM_UP:]
    started_machine = machine()
    fake = start_fake_provider()
    await fake.ready()
    floor = await provider_floor(fake.url)
    settings = production_settings(fake.url)
    common = {
        "DATA_DIR": str(DATA_DIR),
        "LOG_LEVEL": "warning",
        "RATE_LIMIT_PER_MINUTE": "0",
        **settings,
    }
    ours_port, v1_port = free_port(), free_port()
    ours = ServerProcess(clean_environment(**common, PORT=str(ours_port)))
    v1: ServerProcess | None = None
    peer_error: str | None = "skipped (--no-peer)" if args.no_peer else None
    systems: list[System] = []
    try:
        await ours.ready(within=600)  # ingests the sample on a new database
        systems.append(System("ours", ours_port, ours.url))
        v1 = ServerProcess(
            clean_environment(**common, PORT=str(v1_port)), command=("-m", "bench.v1_baseline")
        )
        await v1.ready(within=300)
        systems.append(System("v1", v1_port, v1.url))
        async with AsyncExitStack() as stack:
            if not args.no_peer:
                workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                env = clean_environment(**common, KNOWLEDGE_DIR=str(ROOT / "knowledge"))
                try:
                    peer = await stack.enter_async_context(
                        langgraph_dev(workdir, env, ready_within=600)
                    )
                    systems.append(System("peer", int(peer.url.rsplit(":", 1)[1]), peer.url))
                except RuntimeError as error:  # it did not start: say why, measure the others
                    peer_error = str(error)[-2000:]
                    log.warning("langgraph dev did not start: %s", peer_error)
            await turns(systems, warm, measured)
    finally:
        ours.stop()
        if v1 is not None:
            v1.stop()
        fake.stop()
    return await summarise(args, systems, measured, peer_error, started_machine, floor)


async def turns(systems: Sequence[System], warm: Sequence[str], measured: Sequence[str]) -> None:
    """Every question to every system in turn; warm-up turns are not kept."""
    tag = time.time_ns()
    for index, question in enumerate([*warm, *measured]):
        for system in systems:
            conversation = f"ttft-{system.name}-{tag}-{index}"
            result = await system.ask(question, conversation)
            if index >= len(warm):
                system.results.append(result)
                system.conversations.append(conversation)
            if not result.ok:
                log.warning("%s failed (%s): %s", system.name, result.status, result.body[-500:])
        if index >= len(warm) and (index - len(warm)) % 10 == 9:
            log.info("%d turns", index - len(warm) + 1)


async def summarise(
    args: argparse.Namespace,
    systems: Sequence[System],
    measured: Sequence[str],
    peer_error: str | None,
    started_machine: dict[str, Any],
    floor: dict[str, float],
) -> dict[str, Any]:
    by_name = {s.name: s for s in systems}
    ours = by_name["ours"]
    searches = await search_ms(measured, DATA_DIR)
    search_p50 = statistics.median(searches)
    ideal = LATENCIES
    ideal_ms = max(ideal.router_ms, ideal.embeddings_ms + search_p50) + (
        ideal.rerank_ms + ideal.llm_first_token_ms
    )
    # The same critical path with each call at what a bare client measured on the fake.
    floor_ms = max(floor["router"], floor["embeddings"] + search_p50) + (
        floor["rerank"] + floor["first"]
    )
    records = await node_runs(DATA_DIR, ours.conversations)
    ttft = [r.first_text_ms for r in ours.results if r.ok and r.first_text_ms is not None]
    overhead = [t - ideal_ms for t in ttft]
    cut: list[list[Segment]] = [
        segments(turn, runs, ideal, search_p50)
        for turn, runs in zip(ours.results, records, strict=True)
    ]
    names = [s.name for s in next((c for c in cut if c), [])]
    by_segment = {
        name: {
            "ms_p50": rounded(statistics.median([c[i].length_ms for c in cut if c])),
            "overhead_ms_p50": rounded(statistics.median([c[i].overhead_ms for c in cut if c])),
            "overhead_ms_p95": rounded(percentile([c[i].overhead_ms for c in cut if c], 95)),
        }
        for i, name in enumerate(names)
    }
    ordered = sorted(
        (i for i, r in enumerate(ours.results) if r.ok and cut[i]),
        key=lambda i: ours.results[i].first_text_ms or 0,
    )
    if not ordered:
        raise RuntimeError("no turn of ours has both a first token and its node records")
    median_index = ordered[len(ordered) // 2]
    waterfall(
        ours.results[median_index],
        records[median_index],
        cut[median_index],
        ideal_ms,
        args.out.with_name("ttft_waterfall.png"),
    )
    v1_first = [r.first_text_ms for r in by_name["v1"].results if r.ok and r.first_text_ms]
    peer = by_name.get("peer")
    peer_first = [r.first_text_ms for r in peer.results if r.ok and r.first_text_ms] if peer else []
    ours_p50 = statistics.median(ttft)
    return {
        "date": now(),
        "machine": {**started_machine, "load_average_end": machine()["load_average"]},
        "turns": len(measured),
        "latencies": ideal.as_dict(),
        "search_ms": spread(searches),
        "ideal_formula": "max(router, embeddings + search p50) + rerank + LLM first token",
        "ttft_ideal_ms": rounded(ideal_ms),
        "ttft_ms": spread(ttft),
        "ttft_overhead_ms": {
            "p50": rounded(statistics.median(overhead)),
            "p95": rounded(percentile(overhead, 95)),
        },
        "fake_round_trips_ms_p50": floor,
        "ttft_floor_ms": rounded(floor_ms),
        "ttft_overhead_over_floor_ms": {
            "p50": rounded(statistics.median(ttft) - floor_ms),
            "p95": rounded((percentile(ttft, 95) or 0) - floor_ms),
        },
        "overhead_by_segment": by_segment,
        "waterfall_turn": {
            "conversation_id": ours.conversations[median_index],
            "ttft_ms": rounded(ours.results[median_index].first_text_ms),
            "segments": [
                {
                    "name": s.name,
                    "start_ms": rounded(s.start_ms),
                    "ms": rounded(s.length_ms),
                    "ideal_ms": s.ideal_ms,
                }
                for s in cut[median_index]
            ],
        },
        "systems": {s.name: first_text_summary(s.results) for s in systems},
        "v1_first_text_ms_p50": rounded(statistics.median(v1_first)) if v1_first else None,
        "speedup_vs_sequential": (
            round(statistics.median(v1_first) / ours_p50, 2) if v1_first else None
        ),
        "peer_ttft_ms_p50": rounded(statistics.median(peer_first)) if peer_first else None,
        "peer_error": peer_error or (None if peer_first else "no successful peer turn"),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=60, help="measured turns per system")
    parser.add_argument("--no-peer", action="store_true", help="skip langgraph dev")
    parser.add_argument("--out", type=Path, default=RESULTS / "ttft_ideal.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=2))
    print(f"wrote {args.out} and {args.out.with_name('ttft_waterfall.png')}")


if __name__ == "__main__":
    main()
