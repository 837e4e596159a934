"""bench/results/latest.json: the headline figures of the benchmarks' own result files.

    .venv/bin/python -m bench.summary          # the last step of `make bench`

Reads what `bench.ttft_ideal` and `bench.retrieval` wrote (required) and the load sweep of
`bench.load` (when present), and copies their figures under the keys the README table shows.
Nothing is measured here, so nothing here can drift from what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import RESULTS, machine, now, write_json
from core.settings import ROOT

README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def read(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def retrieval_figures(prefix: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{prefix}_ms_p50": figures["hybrid_ms"]["p50"],
        f"{prefix}_ms_p95": figures["hybrid_ms"]["p95"],
        f"{prefix}_recall_at_10": figures["recall_at_10"],
        f"{prefix}_short_results": figures["short_results_hybrid"]
        + figures["short_results_vector"],
    }


def summarise(results: Path = RESULTS) -> dict[str, Any]:
    ttft = read(results / "ttft_ideal.json")
    retrieval = read(results / "retrieval.json")
    if ttft is None or retrieval is None:
        raise SystemExit("run `python -m bench.ttft_ideal` and `python -m bench.retrieval` first")
    after, before = retrieval["after"], retrieval["before_001"]
    summary: dict[str, Any] = {
        "date": now(),
        "machine": machine(),
        "ttft_ideal_ms": ttft["ttft_ideal_ms"],
        "ttft_ms_p50": ttft["ttft_ms"]["p50"],
        "ttft_ms_p95": ttft["ttft_ms"]["p95"],
        "ttft_overhead_ms_p50": ttft["ttft_overhead_ms"]["p50"],
        "ttft_overhead_ms_p95": ttft["ttft_overhead_ms"]["p95"],
        "ttft_floor_ms": ttft["ttft_floor_ms"],
        "ttft_overhead_over_floor_ms_p50": ttft["ttft_overhead_over_floor_ms"]["p50"],
        "ttft_overhead_over_floor_ms_p95": ttft["ttft_overhead_over_floor_ms"]["p95"],
        "v1_first_text_ms_p50": ttft["v1_first_text_ms_p50"],
        "speedup_vs_sequential": ttft["speedup_vs_sequential"],
        "peer_ttft_ms_p50": ttft["peer_ttft_ms_p50"],
        "peer_error": ttft["peer_error"],
        "ttft_turns": ttft["turns"],
        **retrieval_figures("retrieval_100k", after["agent_filtered"]),
        **retrieval_figures("retrieval_100k_shared", after["selective_shared"]),
        **retrieval_figures("retrieval_100k_before", before["agent_filtered"]),
        **retrieval_figures("retrieval_100k_shared_before", before["selective_shared"]),
        # The retrieve node's one statement (three scopes), as 008 ran it and as 009 does.
        "retrieval_100k_statement_ms": after.get("statement_three_scopes_ms"),
        "retrieval_100k_statement_before_009_ms": retrieval.get("before_009", {}).get(
            "statement_three_scopes_ms"
        ),
        "retrieval_queries": retrieval["queries"],
        "retrieval_before_timed": before["hybrid_questions"],
        "retrieval_settings": retrieval["settings"],
        "measured": {
            "ttft_ideal": {"date": ttft["date"], "machine": ttft["machine"]},
            "retrieval": {"date": retrieval["date"], "machine": retrieval["machine"]},
        },
    }
    load = read(results / "load.json")
    if load is not None:
        summary["load"] = load
    return summary


def table(summary: dict[str, Any]) -> str:
    """The README's table: every figure read from `summary`, none typed in."""

    def ms(value: Any) -> str:
        return "n/a" if value is None else f"{value:,.0f} ms" if value >= 100 else f"{value} ms"

    s = summary

    def retrieval(prefix: str) -> str:
        return (
            f"p50 {ms(s[prefix + '_ms_p50'])}, p95 {ms(s[prefix + '_ms_p95'])}, "
            f"recall@10 {s[prefix + '_recall_at_10']}, short results {s[prefix + '_short_results']}"
        )

    peer = (
        ms(s["peer_ttft_ms_p50"])
        if s["peer_ttft_ms_p50"] is not None
        else f"did not run: {s['peer_error']}"
    )
    rows = [
        (
            "Ideal TTFT: max(router, embeddings + search) + rerank + first token",
            ms(s["ttft_ideal_ms"]),
        ),
        (
            f"TTFT p50 / p95 ({s['ttft_turns']} streamed turns)",
            f"{ms(s['ttft_ms_p50'])} / {ms(s['ttft_ms_p95'])}",
        ),
        (
            "Overhead over the ideal p50 / p95 (target 30 / 80 ms)",
            f"{ms(s['ttft_overhead_ms_p50'])} / {ms(s['ttft_overhead_ms_p95'])}",
        ),
        (
            "… over the fake's own round trips p50 / p95",
            f"{ms(s['ttft_overhead_over_floor_ms_p50'])} / "
            f"{ms(s['ttft_overhead_over_floor_ms_p95'])}",
        ),
        ("v1 design (sequential, JSON) first visible text p50", ms(s["v1_first_text_ms_p50"])),
        ("Speed-up of the first visible text over v1", f"{s['speedup_vs_sequential']}x"),
        ("Same graph under `langgraph dev`, TTFT p50", peer),
        (
            "Retrieval at 100k chunks, agent-filtered (target p95 ≤ 20 ms, recall ≥ 0.95, 0 short)",
            retrieval("retrieval_100k"),
        ),
        ("… `shared` only, the most selective filter", retrieval("retrieval_100k_shared")),
        (
            f"… agent-filtered, before migration 008 "
            f"({s['retrieval_before_timed']} questions timed)",
            retrieval("retrieval_100k_before"),
        ),
        ("… `shared` only, before migration 008", retrieval("retrieval_100k_shared_before")),
    ]
    now_009, before_009 = (
        s["retrieval_100k_statement_ms"],
        s["retrieval_100k_statement_before_009_ms"],
    )
    if now_009 is not None and before_009 is not None:
        rows.append(
            (
                "… a turn's three scopes in one statement, before / after migration 009",
                f"p50 {ms(before_009['p50'])} / {ms(now_009['p50'])}, "
                f"p95 {ms(before_009['p95'])} / {ms(now_009['p95'])}",
            )
        )
    rows += load_rows(s.get("load"))
    machine_line = (
        f"{s['machine']['cores']} cores, {s['machine']['model']}, load average "
        f"{s['measured']['ttft_ideal']['machine']['load_average'][0]} (TTFT) and "
        f"{s['measured']['retrieval']['machine']['load_average'][0]} (retrieval) at the start"
    )
    lines = ["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    return "\n".join([*lines, "", f"Measured {s['date'][:10]} on {machine_line}."])


def load_rows(load: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Rows of the load sweep (`make load`), when it has run: one per production step, and
    the embedded step with the most streams."""
    if load is None:
        return []
    rows: list[tuple[str, str]] = []
    for sweep in load["sweeps"]:
        steps = sweep["steps"] if sweep["mode"] == "production" else sweep["steps"][-1:]
        for step in steps:
            value = (
                f"{step['errors']} errors, TTFT p50 {step['ttft_ms_p50']} ms / p95 "
                f"{step['ttft_ms_p95']} ms, token gap p95 {step['token_gap_ms_p95']} ms, "
                f"{step['turns_per_second']} turns/s"
            )
            if "health_ms_p95" in step:
                value += f", `/health` p95 {step['health_ms_p95']} ms"
            rows.append((f"Load, {sweep['mode']}, {step['streams']} streams at once", value))
    return rows


def update_readme(summary: dict[str, Any], readme: Path = README) -> None:
    """Replace the table between the README's bench markers."""
    text = readme.read_text(encoding="utf-8")
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{readme} has no {START} ... {END} block")
    readme.write_text(f"{head}{START}\n{table(summary)}\n{END}{tail}", encoding="utf-8")


def main() -> None:
    summary = summarise()
    write_json(RESULTS / "latest.json", summary)
    update_readme(summary)
    print(json.dumps({k: v for k, v in summary.items() if not isinstance(v, dict)}, indent=2))


if __name__ == "__main__":
    main()
