"""The eval suite: metrics, datasets and their splits, the runner's reports, the fit, the gate."""

import json
from pathlib import Path

import numpy as np
import pytest

from core.domain import Route
from evals import fit
from evals.__main__ import main
from evals.datasets import (
    DATASETS,
    FIRST_TEST_SETS,
    INDEPENDENT_TEST_SETS,
    TEST_SETS,
    RoutingCase,
    load_retrieval,
    load_routing,
)
from evals.metrics import routing_report
from evals.routing import predict
from providers.embeddings import EmbeddingCache
from providers.route_classifier import RouteClassifier
from providers.router import ClassifierRouter

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"

# The gate: the shipped router (prompts/router_classifier.*, `make calibrate`) on every test set,
# none of which it was fitted on, against the targets of issue 13, set by set.
SINGLE_TARGETS = {"accuracy": 0.93, "escalate_recall": 0.95, "escalate_precision": 0.85}
MULTITURN_TARGETS = {"accuracy": 0.90, "escalate_recall": 0.95}


def test_metrics_by_hand() -> None:
    expected = ["audrey", "audrey", "carole", "escalate", "escalate"]
    predicted = ["audrey", "carole", "carole", "escalate", "audrey"]
    report = routing_report("r", expected, predicted, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert report["accuracy"] == 0.6
    assert report["per_class"]["audrey"] == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "support": 2,
    }
    assert report["per_class"]["carole"]["precision"] == 0.5
    assert report["per_class"]["carole"]["recall"] == 1.0
    assert report["escalate_recall"] == 0.5
    assert report["escalate_precision"] == 1.0
    assert report["confusion"]["escalate"] == {"audrey": 1, "carole": 0, "escalate": 1}
    assert report["macro_f1"] == round((0.5 + 2 / 3 + 2 / 3) / 3, 4)
    assert report["latency_ms"] == {"p50": 3.0, "p95": 5.0}


def test_datasets_are_large_enough_and_valid() -> None:
    singles = [c for p in (*fit.SINGLE_FIT_SETS, *TEST_SETS) for c in load_routing(p)]
    singles = [c for c in singles if not c.history]
    multi = [c for p in (*fit.MULTITURN_FIT_SETS, *TEST_SETS) for c in load_routing(p)]
    multi = [c for c in multi if c.history]
    assert len(singles) >= 300
    assert len(multi) >= 40
    assert all(c.history for c in multi)
    assert {c.expected for c in singles} == {"audrey", "carole", "escalate"}
    independent = [c for p in INDEPENDENT_TEST_SETS for c in load_routing(p)]
    assert len([c for c in independent if not c.history]) >= 300
    assert len([c for c in independent if c.history]) >= 80
    retrieval = load_retrieval(DATASETS / "retrieval.jsonl")
    assert len(retrieval) >= 60
    assert {c.agent for c in retrieval} >= {"audrey", "carole"}
    for case in retrieval:
        for source in case.expected_sources:
            assert (KNOWLEDGE / source).is_file(), f"{case.id}: {source} does not exist"


def test_the_test_sets_are_held_out() -> None:
    """No test message is a fit message or a training example of the router, so the gate
    measures generalisation."""
    test = {c.message.strip().lower() for p in TEST_SETS for c in load_routing(p)}
    fitted = {c.message.strip().lower() for p in fit.FIT_SETS for c in load_routing(p)}
    training = {e.text.strip().lower() for e in fit.training_examples()}
    examples = json.loads(fit.EXAMPLES_PATH.read_text(encoding="utf-8"))
    knn = {
        m.strip().lower()
        for key in ("examples", "fitted_examples")
        for route in examples[key].values()
        for m in route
    }
    assert not test & fitted
    assert not test & training
    assert not test & knn
    assert not {p.name for p in TEST_SETS} & {p.name for p in fit.FIT_SETS}


def test_routing_runner_writes_the_reports(tmp_path: Path) -> None:
    lines = [
        {"message": "Comment automatiser mes emails de bienvenue ?", "expected": "audrey"},
        {"message": "Des idées de reels pour mon salon de thé ?", "expected": "carole"},
        {"message": "Quel temps fera-t-il demain ?", "expected": "escalate"},
        {"message": "Je veux parler à quelqu'un", "expected": "escalate"},
        {
            "message": "et la fréquence idéale ?",
            "expected": "carole",
            "history": [
                {"role": "user", "content": "une idée de post ?"},
                {"role": "assistant", "content": "Voici une idée.", "agent": "carole"},
            ],
        },
    ]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    second.write_text(json.dumps(lines[0]), encoding="utf-8")
    out = tmp_path / "out"
    args = ["routing", "--dataset", str(first), "--dataset", str(second), "--router", "keyword"]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["datasets"] == ["first", "second"]
    [keyword] = report["routers"]
    assert keyword["router"] == "keyword/v1"
    result = keyword["sets"]["first"]
    assert result["n"] == 5
    assert set(result["per_class"]["audrey"]) == {"precision", "recall", "f1", "support"}
    # v1 keywords: "email" → audrey, "reel" → carole, no keyword → escalate (both escalations
    # right), the follow-up has no keyword and v1 has no context → escalate (wrong).
    assert result["accuracy"] == 0.8
    assert result["escalate_precision"] == round(2 / 3, 4)
    assert result["confusion"]["carole"] == {"audrey": 0, "carole": 1, "escalate": 1}
    assert keyword["sets"]["second"]["accuracy"] == 1.0
    assert keyword["mean"]["accuracy"] == 0.9
    assert "| keyword/v1 | 0.800 (1.00 / 0.67) | 1.000" in (out / "report.md").read_text()
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_llm_router_runs_end_to_end_on_the_fake_provider(tmp_path: Path) -> None:
    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text(
        json.dumps(
            {"message": "Comment relier Typeform à HubSpot avec Zapier ?", "expected": "audrey"}
        )
        + "\n"
        + json.dumps({"message": "Je veux un remboursement", "expected": "escalate"}),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code = main(
        ["routing", "--dataset", str(dataset), "--router", "llm", "--fake-llm", "--out", str(out)]
    )
    assert code == 0
    [llm] = json.loads((out / "report.json").read_text())["routers"]
    assert llm["router"].startswith("llm/")
    assert llm["router"].endswith("(fake provider)")
    assert llm["sets"]["tiny"]["n"] == 2


SMALL_GRID = fit.PolicyGrid(
    thresholds=(0.3, 0.4, 0.5),
    conversation_escalate_shifts=(0.0, 1.0),
    follow_up_escalate_shifts=(0.0,),
    conversation_boosts=(0.0,),
    follow_up_boosts=(0.0, 1.0),
    answer_boosts=(0.0,),
    context_weights=(0.0,),
)


async def test_the_fit_writes_what_the_router_reads(
    tmp_path: Path, embeddings: EmbeddingCache
) -> None:
    every = fit.training_examples()
    examples = [e for route in ("audrey", "carole", "escalate") for e in every if e.route == route][
        ::8
    ]
    multi = fit.multiturn_cases()[::6]
    classifier, summary = await fit.fit(
        embeddings,
        examples=examples,
        multi=multi,
        c_grid=(16.0,),
        ngram_weights=(0.5,),
        grid=SMALL_GRID,
    )
    assert summary["hyperparameters"]["C"] == 16.0
    assert classifier.policy.escalate_threshold in SMALL_GRID.thresholds
    assert classifier.policy.follow_up_boost in SMALL_GRID.follow_up_boosts
    weights, policy = tmp_path / "c.npz", tmp_path / "c.json"
    classifier.save(weights, policy)
    loaded = RouteClassifier.load(weights, policy)
    assert loaded.policy == classifier.policy
    assert loaded.meta["fitted_on"][1:] == [p.name for p in fit.FIT_SETS]
    router = ClassifierRouter(embeddings, loaded)
    await router.warm()
    # Fitted on these messages: the model reproduces most of its own training labels.
    predictions = await predict(
        router, [RoutingCase(message=e.text, expected=e.route) for e in examples]
    )
    assert sum(p.predicted == p.case.expected for p in predictions) / len(predictions) > 0.9


def test_the_policy_grid_keeps_the_escalate_targets() -> None:
    """Among grid points, one that misses escalate recall never wins on accuracy alone."""
    p_esc: dict[Route, float] = {"audrey": 0.3, "carole": 0.3, "escalate": 0.4}
    p_aud: dict[Route, float] = {"audrey": 0.55, "carole": 0.1, "escalate": 0.35}
    singles = [
        (RoutingCase(message="a", expected="escalate"), p_esc),
        *[(RoutingCase(message=f"b{i}", expected="audrey"), p_aud) for i in range(3)],
    ]
    multi = {0.0: [(RoutingCase(message="c", expected="audrey"), p_aud)]}
    policy, score = fit.choose_policy(singles, multi, SMALL_GRID)
    # 0.3 escalates everything (recall 1, accuracy 0.25); 0.4 escalates only the escalation
    # (recall 1, accuracy 1); 0.5 escalates nothing (recall 0).
    assert policy.escalate_threshold == 0.4
    assert score.meets_targets


def test_when_no_policy_meets_the_targets_the_closest_wins_not_the_most_accurate() -> None:
    """Escalating nothing can be the most accurate point on data with few escalations; the fit
    then keeps the point that falls least short of the escalate targets."""
    p_esc: dict[Route, float] = {"audrey": 0.25, "carole": 0.3, "escalate": 0.45}
    p_near: dict[Route, float] = {"audrey": 0.5, "carole": 0.08, "escalate": 0.42}
    p_aud: dict[Route, float] = {"audrey": 0.8, "carole": 0.1, "escalate": 0.1}
    singles = [
        (RoutingCase(message="e", expected="escalate"), p_esc),
        *[(RoutingCase(message=f"n{i}", expected="audrey"), p_near) for i in range(2)],
        *[(RoutingCase(message=f"a{i}", expected="audrey"), p_aud) for i in range(20)],
    ]
    multi = {0.0: [(RoutingCase(message="c", expected="audrey"), p_aud)]}
    policy, score = fit.choose_policy(singles, multi, SMALL_GRID)
    # 0.5 escalates nothing: accuracy 22/23 but recall 0. 0.3 and 0.4 catch the escalation
    # with two false alarms: accuracy 21/23, recall 1, precision 1/3.
    assert policy.escalate_threshold in (0.3, 0.4)
    assert score.escalate_recall == 1.0
    assert not score.meets_targets


def test_cross_validation_holds_out_one_source_whole() -> None:
    """With sources, a source's rows are scored by a model fitted on the other sources only."""
    rng = np.random.default_rng(0)
    words = ["zap", "reel", "facture", "mail", "post", "appel", "crm", "hook", "avis"]
    routes = ["audrey", "carole", "escalate"]
    texts = [" ".join(rng.choice(words, 4)) + f" {i}" for i in range(60)]
    labels = [routes[i % 3] for i in range(60)]
    sources = ["first" if i < 30 else "second" for i in range(60)]
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    oof = fit.out_of_fold_logits(texts, vectors, labels, 4.0, 0.5, sources)
    grams, idf = fit.vocabulary(texts[:30])
    alone = fit._fit_lr(fit.design(texts[:30], vectors[:30], grams, idf, 0.5), labels[:30], 4.0)
    expected = fit._logits_in_route_order(
        alone, fit.design(texts[30:], vectors[30:], grams, idf, 0.5)
    )
    np.testing.assert_allclose(oof[30:], expected, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="session")
async def gate_reports(router: ClassifierRouter) -> dict[str, dict[str, object]]:
    """Each test set routed once per session by the shipped router (embeddings cached)."""
    reports: dict[str, dict[str, object]] = {}
    for path in TEST_SETS:
        cases = load_routing(path)
        predictions = await predict(router, cases)
        report = routing_report(
            path.stem,
            [c.expected for c in cases],
            [p.predicted for p in predictions],
            [0.0] * len(cases),
        )
        report["multi_turn"] = all(c.history for c in cases)
        report["mistakes"] = [
            (p.case.message, p.case.expected, p.predicted, p.reason)
            for p in predictions
            if p.predicted != p.case.expected
        ]
        reports[path.stem] = report
    return reports


def targets_of(report: dict[str, object]) -> dict[str, float]:
    return MULTITURN_TARGETS if report["multi_turn"] else SINGLE_TARGETS


@pytest.mark.parametrize("name", [p.stem for p in TEST_SETS])
def test_gate_router_on_every_test_set(
    gate_reports: dict[str, dict[str, object]], name: str
) -> None:
    report = gate_reports[name]
    missed = {}
    for metric, target in targets_of(report).items():
        value = report[metric]
        assert isinstance(value, float)
        if value < round(target, 4):
            missed[metric] = (value, round(target, 4))
    assert not missed, (name, missed, report["mistakes"])


def test_the_independent_sets_are_separate_files() -> None:
    assert set(FIRST_TEST_SETS).isdisjoint(INDEPENDENT_TEST_SETS)
    assert all(p.parent == DATASETS for p in TEST_SETS)
