"""Write routing eval reports: JSON, Markdown and a confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.metrics import LABELS


def _cell(result: dict[str, Any]) -> str:
    return (
        f"{result['accuracy']:.3f} ({result['escalate_recall']:.2f} / "
        f"{result['escalate_precision']:.2f})"
    )


def markdown(summaries: list[dict[str, Any]]) -> str:
    """The router x set table (accuracy, escalate recall / precision), then each router's
    details set by set."""
    names = list(summaries[0]["sets"])
    lines = [
        "Accuracy (escalate recall / escalate precision) per test set; the mean is over sets.",
        "",
        "| router | "
        + " | ".join(f"{n} (n={summaries[0]['sets'][n]['n']})" for n in names)
        + " | mean | p50 ms | p95 ms |",
        "|---" * (len(names) + 4) + "|",
    ]
    for s in summaries:
        cells = " | ".join(_cell(s["sets"][n]) for n in names)
        lines.append(
            f"| {s['router']} | {cells} | {_cell(s['mean'])} | "
            f"{s['latency_ms']['p50']:.1f} | {s['latency_ms']['p95']:.1f} |"
        )
    for s in summaries:
        for name, r in s["sets"].items():
            lines += ["", f"### {s['router']} — {name}", ""]
            lines += ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            for label in LABELS:
                c = r["per_class"][label]
                lines.append(
                    f"| {label} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | "
                    f"{c['support']} |"
                )
            lines += ["", "Confusion (rows: expected, columns: predicted)", ""]
            lines.append("| | " + " | ".join(LABELS) + " |")
            lines.append("|---" * (len(LABELS) + 1) + "|")
            for label in LABELS:
                row = r["confusion"][label]
                lines.append(f"| {label} | " + " | ".join(str(row[p]) for p in LABELS) + " |")
            if r.get("errors"):
                lines += ["", f"Mistakes ({len(r['errors'])}):", ""]
                for error in r["errors"]:
                    lines.append(
                        f"- `{error['expected']}` → `{error['predicted']}`: {error['message']}"
                    )
    return "\n".join(lines) + "\n"


def confusion_png(summaries: list[dict[str, Any]], path: Path) -> None:
    """One confusion matrix per router, over all the sets together."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(4.2 * len(summaries), 4), squeeze=False)
    for ax, s in zip(axes[0], summaries, strict=True):
        r = s["pooled"]
        matrix = [[r["confusion"][e][p] for p in LABELS] for e in LABELS]
        ax.imshow(matrix, cmap="Purples")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=11)
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("expected")
        ax.set_title(
            f"{s['router']}\nmean accuracy {s['mean']['accuracy']:.3f} (all sets)", fontsize=10
        )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(summaries: list[dict[str, Any]], out: Path) -> None:
    """report.json (every router, set by set, with its mistakes), report.md, confusion.png."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"datasets": list(summaries[0]["sets"]), "routers": summaries}
    (out / "report.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    (out / "report.md").write_text(markdown(summaries), encoding="utf-8")
    confusion_png(summaries, out / "confusion.png")
