"""Retrieval at 100,000 chunks: the hybrid search's latency, vector recall and short results.

    .venv/bin/python -m bench.retrieval              # builds the base once (bench/synthetic_kb.py)
    .venv/bin/python -m bench.retrieval --queries 200 --before-queries 20

On the synthetic 100k-chunk base (45% audrey, 45% carole, 10% shared), every question of the
eval datasets (464, real French and English chat messages, embedded with the bundled e5 model)
is searched in each of the three scopes a turn searches (nodes/retrieve.py): audrey + shared,
carole + shared and shared alone, the most selective. Per scope:

- **latency** of `match_documents_hybrid` (k = 10, vector + full text), as the retriever calls
  it, one search at a time, and of the three scopes at once as the retrieve node runs them;
- **recall@10** of its vector path (the same function with no text) against exact search
  (numpy over every vector of the scope);
- **short results**: searches that returned fewer than k rows.

**Before** is the search as migration 001 shipped it (one HNSW index, every word of the
question ranked), measured in the same run on the same data inside a transaction that undoes
migration 008 (`database/migrations/down/`) and is rolled back. Its full-text path takes
seconds per search at this size, so it runs on `--before-queries` questions only. **After**
is 008 and 009 with the settings' knobs, then a sweep of the knobs. Between them, the three
scopes in the one statement the retrieve node sends, as 008 ran it (`before_009`: each scope
planned for its values and reading the question's words again) and as 009 does. Results:
bench/results/retrieval.json and retrieval.png.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import RESULTS, machine, now, spread, write_json
from bench.synthetic_kb import DATA_DIR, MODEL, open_knowledge_base
from core.domain import AgentOwner, Route
from core.settings import get_settings
from evals.datasets import DATASETS, load_retrieval, load_routing
from nodes.retrieve import SEARCH_SCOPES
from providers.embeddings import Vector, make_embeddings
from store import documents
from store.documents import SearchTuning, StoredVectors
from store.migrations import undone
from store.postgres import Connection, Pool

log = logging.getLogger(__name__)

K = 10
# The scopes a turn searches, named by the route that reads them.
SCOPES: dict[Route, tuple[AgentOwner, ...]] = SEARCH_SCOPES
# The selective scope the issue asks about separately; the others are "agent-filtered".
SELECTIVE: Route = "escalate"


def questions() -> list[str]:
    """Every distinct message of the eval datasets (routing, multi-turn, retrieval)."""
    found: list[str] = []
    for name in ("routing_fit", "routing_test", "multiturn_fit", "multiturn_test"):
        found += [case.message for case in load_routing(DATASETS / f"{name}.jsonl")]
    found += [case.question for case in load_retrieval(DATASETS / "retrieval.jsonl")]
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class Query:
    text: str
    vector: Vector


class ExactSearch:
    """Exact cosine top-k per scope, in numpy: the ground truth for recall."""

    def __init__(self, stored: StoredVectors):
        norms = np.linalg.norm(stored.matrix, axis=1, keepdims=True)
        self._unit = stored.matrix / np.where(norms == 0, 1.0, norms)
        self._ids = stored.ids
        owners = np.asarray(stored.owners)
        self._masks = {route: np.isin(owners, scope) for route, scope in SCOPES.items()}

    def top(self, vector: Vector, route: Route, k: int = K) -> list[int]:
        similarity = self._unit @ (vector / (np.linalg.norm(vector) or 1.0))
        similarity = np.where(self._masks[route], similarity, -np.inf)
        best = np.argpartition(-similarity, k)[:k]
        best = best[np.argsort(-similarity[best])]
        return [int(self._ids[i]) for i in best]


@dataclass
class ScopeFigures:
    hybrid_ms: list[float] = dataclasses.field(default_factory=list)
    vector_ms: list[float] = dataclasses.field(default_factory=list)
    recall: list[float] = dataclasses.field(default_factory=list)
    short_hybrid: int = 0
    short_vector: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "hybrid_ms": spread(self.hybrid_ms),
            "vector_only_ms": spread(self.vector_ms),
            "recall_at_10": round(float(np.mean(self.recall)), 4) if self.recall else None,
            "recall_at_10_min": round(float(np.min(self.recall)), 2) if self.recall else None,
            "short_results_hybrid": self.short_hybrid,
            "short_results_vector": self.short_vector,
        }


async def measure(
    conn: Connection,
    queries: Sequence[Query],
    exact: ExactSearch,
    tuning: SearchTuning | None,
    hybrid_queries: int | None = None,
) -> dict[Route, ScopeFigures]:
    """Hybrid latency and short results, then vector recall, for every scope (one connection,
    one search at a time)."""
    figures = {route: ScopeFigures() for route in SCOPES}
    timed = queries[:hybrid_queries] if hybrid_queries is not None else queries
    for query in timed:
        for route, scope in SCOPES.items():
            started = time.perf_counter()
            hits = await documents.search_hybrid_on(
                conn, query.vector, query.text, scope, K, tuning
            )
            figures[route].hybrid_ms.append((time.perf_counter() - started) * 1000)
            figures[route].short_hybrid += len(hits) < K
    for query in queries:
        for route, scope in SCOPES.items():
            # No text: the function's vector path alone, in its own order.
            started = time.perf_counter()
            hits = await documents.search_hybrid_on(conn, query.vector, "", scope, K, tuning)
            figures[route].vector_ms.append((time.perf_counter() - started) * 1000)
            truth = set(exact.top(query.vector, route))
            figures[route].recall.append(len(truth & {h.id for h in hits}) / K)
            figures[route].short_vector += len(hits) < K
    return figures


async def node_like(pool: Pool, queries: Sequence[Query], tuning: SearchTuning) -> list[float]:
    """The three scopes searched at once over the pool, as the retrieve node does (ms)."""
    times: list[float] = []
    for query in queries:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                documents.search_hybrid(pool, query.vector, query.text, scope, K, tuning)
                for scope in SCOPES.values()
            )
        )
        times.append((time.perf_counter() - started) * 1000)
    return times


async def one_statement(
    conn: Connection, queries: Sequence[Query], tuning: SearchTuning, *, before_009: bool = False
) -> list[float]:
    """The three scopes in the one statement the retrieve node sends (ms each, one connection).

    `before_009`: the statement as the server sent it under 008, `match_documents_hybrid` per
    scope (each planned for its values and reading the question's words again); to be run
    inside `undone(conn, "009_search_plans")`."""
    times: list[float] = []
    for query in queries:
        started = time.perf_counter()
        if before_009:
            await conn.execute(
                "select s.scope, m.id from (values (0, %(a)s::text[]), (1, %(c)s::text[]), "
                "(2, %(s)s::text[])) as s(scope, agents) cross join lateral "
                "match_documents_hybrid(%(e)s, %(t)s, s.agents, %(k)s, %(n)s, "
                "ef_search => %(ef)s, max_scan_tuples => %(scan)s, text_budget => %(budget)s) m",
                {
                    "a": list(SCOPES["audrey"]),
                    "c": list(SCOPES["carole"]),
                    "s": list(SCOPES["escalate"]),
                    "e": query.vector,
                    "t": query.text,
                    "k": K,
                    "n": max(tuning.candidates, 4 * K),
                    "ef": tuning.ef_search,
                    "scan": tuning.max_scan_tuples,
                    "budget": tuning.text_budget,
                },
            )
        else:
            await documents.search_scopes_on(conn, query.vector, query.text, SCOPES, K, tuning)
        times.append((time.perf_counter() - started) * 1000)
    return times


def combined(figures: dict[Route, ScopeFigures], routes: Sequence[Route]) -> dict[str, Any]:
    """The figures of several scopes pooled (the agent-filtered ones, or the selective one)."""
    pooled = ScopeFigures()
    for route in routes:
        pooled.hybrid_ms += figures[route].hybrid_ms
        pooled.vector_ms += figures[route].vector_ms
        pooled.recall += figures[route].recall
        pooled.short_hybrid += figures[route].short_hybrid
        pooled.short_vector += figures[route].short_vector
    return pooled.summary()


def report(figures: dict[Route, ScopeFigures]) -> dict[str, Any]:
    agent_routes = [r for r in SCOPES if r != SELECTIVE]
    return {
        "agent_filtered": combined(figures, agent_routes),
        "selective_shared": combined(figures, [SELECTIVE]),
        "by_scope": {"+".join(SCOPES[r]): figures[r].summary() for r in SCOPES},
    }


async def server_memory(conn: Connection) -> dict[str, Any]:
    """Shared buffers against what the search reads (its HNSW indexes), in MB: at 128 MB
    (initdb's default) the per-scope indexes did not fit and every search re-read pages."""
    cur = await conn.execute(
        "select c.relname, pg_relation_size(c.oid) / 2^20 as mb from pg_index i "
        "join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam "
        "where i.indrelid = 'documents'::regclass and a.amname = 'hnsw' order by c.relname"
    )
    indexes = {str(row["relname"]): round(float(row["mb"]), 1) for row in await cur.fetchall()}
    cur = await conn.execute(
        "select pg_size_bytes(current_setting('shared_buffers')) / 2^20 as mb, "
        "pg_relation_size('documents') / 2^20 as heap_mb"
    )
    row = await cur.fetchone()
    assert row is not None
    return {
        "shared_buffers_mb": round(float(row["mb"])),
        "documents_heap_mb": round(float(row["heap_mb"]), 1),
        "hnsw_index_mb": indexes,
    }


def sweep_grid(base: SearchTuning) -> list[SearchTuning]:
    """The knobs tried around the settings' values, one at a time."""
    grid = [dataclasses.replace(base, ef_search=ef) for ef in (40, 100, 150, 175, 250, 300)]
    grid += [dataclasses.replace(base, text_budget=budget) for budget in (100, 250, 500, 1000)]
    return [t for t in dict.fromkeys(grid) if t != base]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    pool, built = await open_knowledge_base(DATA_DIR, rebuild=args.rebuild)
    try:
        embeddings = make_embeddings(MODEL)
        texts = questions()[: args.queries]
        vectors = [await embeddings.query(text) for text in texts]
        queries = [Query(t, v) for t, v in zip(texts, vectors, strict=True)]
        exact = ExactSearch(await documents.stored_vectors(pool))
        tuning = SearchTuning.from_settings(get_settings())
        result: dict[str, Any] = {
            "date": now(),
            "machine": machine(),
            "knowledge_base": built,
            "queries": len(queries),
            "k": K,
            "settings": dataclasses.asdict(tuning),
        }
        async with pool.connection() as conn:
            result["server"] = await server_memory(conn)
            # Warm the caches the way a running server has them, for both versions alike.
            await measure(conn, queries[:40], exact, tuning)
            async with undone(conn, "008_search_at_scale"):
                await measure(conn, queries[:10], exact, None, hybrid_queries=3)
                log.info("before (001): %d questions timed", args.before_queries)
                before = await measure(conn, queries, exact, None, args.before_queries)
            async with undone(conn, "009_search_plans"):
                await one_statement(conn, queries[:20], tuning, before_009=True)
                log.info("before (008): the three scopes in one statement")
                statement_008 = spread(await one_statement(conn, queries, tuning, before_009=True))
            await one_statement(conn, queries[:20], tuning)
            statement_009 = spread(await one_statement(conn, queries, tuning))
            log.info("after (009, settings)")
            after = await measure(conn, queries, exact, tuning)
            result["before_001"] = report(before)
            result["before_001"]["hybrid_questions"] = min(args.before_queries, len(queries))
            result["after"] = report(after)
            # The statement of a turn's retrieve node, on one connection: 008 and 009 alike.
            result["before_009"] = {"statement_three_scopes_ms": statement_008}
            result["after"]["statement_three_scopes_ms"] = statement_009
            sweep: list[dict[str, Any]] = []
            if not args.no_sweep:
                for knobs in sweep_grid(tuning):
                    log.info("sweep: %s", knobs)
                    figures = await measure(conn, queries, exact, knobs)
                    sweep.append({"knobs": dataclasses.asdict(knobs), **report(figures)})
            result["sweep"] = sweep
        result["after"]["node_three_scopes_ms"] = spread(await node_like(pool, queries, tuning))
        result["machine"]["load_average_end"] = machine()["load_average"]
        return result
    finally:
        await pool.close()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scopes = list(result["after"]["by_scope"])
    fig, (latency, recall) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.2
    for offset, (label, key, stat) in enumerate(
        [
            ("001 p50", "before_001", "p50"),
            ("001 p95", "before_001", "p95"),
            ("after p50", "after", "p50"),
            ("after p95", "after", "p95"),
        ]
    ):
        values = [result[key]["by_scope"][s]["hybrid_ms"][stat] or 0 for s in scopes]
        xs = [i + (offset - 1.5) * width for i in range(len(scopes))]
        latency.bar(xs, values, width, label=label)
    latency.axhline(20, color="red", linestyle=":", label="target p95 20 ms")
    latency.set_yscale("log")
    latency.set_xticks(range(len(scopes)), scopes)
    latency.set_ylabel("hybrid search, ms (log)")
    latency.set_title(f"{result['knowledge_base']['total']:,} chunks, k = {result['k']}")
    latency.legend(fontsize=8)
    for offset, key in enumerate(["before_001", "after"]):
        values = [result[key]["by_scope"][s]["recall_at_10"] or 0 for s in scopes]
        xs = [i + (offset - 0.5) * 0.35 for i in range(len(scopes))]
        recall.bar(xs, values, 0.35, label="001" if key == "before_001" else "after")
    recall.axhline(0.95, color="red", linestyle=":", label="target 0.95")
    recall.set_ylim(0.5, 1.0)
    recall.set_xticks(range(len(scopes)), scopes)
    recall.set_ylabel("vector recall@10 vs exact")
    recall.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=None, help="at most this many questions")
    parser.add_argument("--before-queries", type=int, default=30, help="timed on 001's search")
    parser.add_argument("--no-sweep", action="store_true", help="only the settings' knobs")
    parser.add_argument("--rebuild", action="store_true", help="build the 100k base again")
    parser.add_argument("--out", type=Path, default=RESULTS / "retrieval.json")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    summary = {k: result[k] for k in ("before_001", "before_009", "after")}
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
