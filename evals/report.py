"""Write eval reports: JSON, Markdown and a confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evals.metrics import LABELS


def markdown(reports: list[dict[str, Any]]) -> str:
    lines = [
        f"Datasets: {', '.join(reports[0]['datasets'])} — n = {reports[0]['n']}",
        "",
        "| router | accuracy | macro-F1 | escalate recall | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r['router']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['escalate_recall']:.3f} | {r['latency_ms']['p50']:.1f} | "
            f"{r['latency_ms']['p95']:.1f} |"
        )
    for r in reports:
        lines += ["", f"### {r['router']}", "", "| label | precision | recall | F1 | support |"]
        lines.append("|---|---|---|---|---|")
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
            lines += ["", f"First mistakes ({len(r['errors'])} in all):", ""]
            for error in r["errors"][:12]:
                lines.append(
                    f"- `{error['expected']}` → `{error['predicted']}`: {error['message']}"
                )
    return "\n".join(lines) + "\n"


def confusion_png(reports: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(reports), figsize=(4.2 * len(reports), 4), squeeze=False)
    for ax, r in zip(axes[0], reports, strict=True):
        matrix = [[r["confusion"][e][p] for p in LABELS] for e in LABELS]
        ax.imshow(matrix, cmap="Purples")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=11)
        ax.set_xticks(range(len(LABELS)), LABELS)
        ax.set_yticks(range(len(LABELS)), LABELS)
        ax.set_xlabel("predicted")
        ax.set_ylabel("expected")
        ax.set_title(f"{r['router']}\naccuracy {r['accuracy']:.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(reports: list[dict[str, Any]], out: Path) -> None:
    """report.json (the first router at top level, every router under `routers`), report.md,
    confusion.png."""
    out.mkdir(parents=True, exist_ok=True)
    primary = dict(reports[0])
    primary["routers"] = reports
    (out / "report.json").write_text(json.dumps(primary, indent=2, ensure_ascii=False))
    (out / "report.md").write_text(markdown(reports), encoding="utf-8")
    confusion_png(reports, out / "confusion.png")
