"""Fit the embedding router's examples and policy on the fit split; report on the test split.

Examples: the hand-written seeds plus the fit split's single messages. Policy (threshold,
top_k, follow-up margin): the grid point with the best 5-fold cross-validated accuracy on the
fit split among those keeping escalate recall >= 0.95 (the best accuracy if none does).
Nothing here reads a *_test file except the final report.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.domain import ROUTES, Route
from evals.datasets import RoutingCase
from evals.metrics import routing_report
from providers.embeddings import EmbeddingCache
from providers.router import EXAMPLES_PATH, EmbeddingRouter, RouterExamples, decide

THRESHOLDS = [round(-0.30 + 0.01 * i, 2) for i in range(51)]
TOP_KS = (3, 5)
MARGINS = (0.02, 0.05, 0.08, 0.12)
FOLDS = 5


async def _scores(
    embeddings: EmbeddingCache,
    examples: dict[Route, list[str]],
    top_k: int,
    cases: Sequence[RoutingCase],
) -> list[dict[Route, float]]:
    router = EmbeddingRouter(embeddings, RouterExamples(examples=examples, top_k=top_k))
    await router.warm()
    return [await router.scores(case.message) for case in cases]


def _accuracy(
    cases: Sequence[RoutingCase], scores: Sequence[dict[Route, float]], policy: RouterExamples
) -> tuple[float, float]:
    predicted = [decide(s, c.query, policy).route for c, s in zip(cases, scores, strict=True)]
    report = routing_report("cv", [c.expected for c in cases], predicted, [0.0] * len(cases))
    return report["accuracy"], report["escalate_recall"]


async def fit(
    embeddings: EmbeddingCache, seeds: RouterExamples, fit_cases: Sequence[RoutingCase]
) -> tuple[RouterExamples, dict[str, Any]]:
    """Choose examples and policy on the fit split only."""
    singles = [c for c in fit_cases if not c.history]
    folds = [fit_cases[i::FOLDS] for i in range(FOLDS)]
    fold_scores: dict[int, list[list[dict[Route, float]]]] = {}
    for top_k in TOP_KS:
        fold_scores[top_k] = []
        for fold in folds:
            held_out = {c.message for c in fold}
            examples: dict[Route, list[str]] = {
                r: seeds.examples[r]
                + [c.message for c in singles if c.expected == r and c.message not in held_out]
                for r in ROUTES
            }
            fold_scores[top_k].append(await _scores(embeddings, examples, top_k, fold))
    results: list[tuple[tuple[bool, float, float], RouterExamples]] = []
    for threshold, top_k, margin in itertools.product(THRESHOLDS, TOP_KS, MARGINS):
        policy = replace(seeds, threshold=threshold, top_k=top_k, follow_up_margin=margin)
        correct = escalated = escalate_total = 0
        for fold, scores in zip(folds, fold_scores[top_k], strict=True):
            for case, score in zip(fold, scores, strict=True):
                route = decide(score, case.query, policy).route
                correct += route == case.expected
                if case.expected == "escalate":
                    escalate_total += 1
                    escalated += route == "escalate"
        accuracy = correct / len(fit_cases)
        recall = escalated / escalate_total if escalate_total else 1.0
        results.append(((recall >= 0.95, accuracy, recall), policy))
    (meets, accuracy, recall), policy = _most_robust(results)
    fitted = {r: [c.message for c in singles if c.expected == r] for r in ROUTES}
    chosen = replace(
        policy, examples={r: list(dict.fromkeys(seeds.examples[r] + fitted[r])) for r in ROUTES}
    )
    return chosen, {
        "cv_accuracy": round(accuracy, 4),
        "cv_escalate_recall": round(recall, 4),
        "meets_escalate_target": meets,
        "threshold": policy.threshold,
        "top_k": policy.top_k,
        "follow_up_margin": policy.follow_up_margin,
        "fitted_examples": {r: len(v) for r, v in fitted.items()},
    }


def _most_robust(
    results: Sequence[tuple[tuple[bool, float, float], RouterExamples]],
) -> tuple[tuple[bool, float, float], RouterExamples]:
    """The best score; among ties, the middle of the best threshold plateau rather than its
    edge, so a small drift in scores does not fall off it."""
    best_key = max(key for key, _ in results)
    tied = [policy for key, policy in results if key == best_key]
    first = tied[0]
    plateau = sorted(
        (p for p in tied if (p.top_k, p.follow_up_margin) == (first.top_k, first.follow_up_margin)),
        key=lambda p: p.threshold,
    )
    return best_key, plateau[len(plateau) // 2]


def save(
    policy: RouterExamples,
    fitted_from: list[str],
    fit_cases: Sequence[RoutingCase],
    path: Path = EXAMPLES_PATH,
) -> None:
    """Write the chosen values where the router reads them (seed examples kept as written)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["policy"] = {
        **data.get("policy", {}),
        "threshold": policy.threshold,
        "top_k": policy.top_k,
        "follow_up_margin": policy.follow_up_margin,
        "fitted_on": fitted_from,
    }
    data["fitted_examples"] = {
        r: [c.message for c in fit_cases if not c.history and c.expected == r] for r in ROUTES
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def seed_examples(path: Path = EXAMPLES_PATH) -> RouterExamples:
    """The hand-written examples alone (without a previous calibration's fitted ones)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return RouterExamples(examples={r: list(data["examples"][r]) for r in ROUTES})
