"""Draw the project's import graph between folders (and report cycles between modules).

`python -m devtools.import_graph --out docs/imports.png` reads every module's imports with `ast`
(no import is executed), groups modules by folder, and draws folder -> folder edges labelled with
the number of module imports behind them, laid out in layers from the bottom (folders that import
nothing of ours) up. Module-level cycles are listed on stdout.
"""

from __future__ import annotations

import argparse
import ast
import json
from collections import defaultdict
from pathlib import Path

from devtools.drawing import layers

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", ".tools", ".data", ".git", "node_modules", "docs", "bench", "knowledge"}


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the project's own Python files (tests excluded)."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if parts[0] in SKIP or parts[0].startswith("."):
            continue
        if parts[0] == "tests" and parts[:2] != ("tests", "fakes"):
            continue
        name = ".".join(parts)[: -len(".py")]
        name = name.removesuffix(".__init__")
        found[name] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules `path` imports (at any level, including inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def folder_of(module: str, path: Path, depth: int) -> str:
    """`graph/store/` for store.documents at depth 2; `server.py` for a top-level module."""
    parts = module.split(".")
    if path.name != "__init__.py":
        parts = parts[:-1]
        if not parts:
            return path.name
    return "/".join(parts[:depth]) + "/"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def draw(edges: dict[tuple[str, str], int], sizes: dict[str, int], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    nodes = sorted(sizes)
    # A folder sits one row above the highest folder it imports (imported -> importer edges).
    level = layers(nodes, [(target, source) for source, target in edges if source != target])
    rows: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        rows[level[node]].append(node)
    width = max(len(r) for r in rows.values())
    pos: dict[str, tuple[float, float]] = {}
    for lvl, row in rows.items():
        for i, node in enumerate(sorted(row)):
            pos[node] = ((i - (len(row) - 1) / 2) * 3.0, lvl * 1.9)
    fig, ax = plt.subplots(figsize=(max(8.0, 3.1 * width), 1.9 * len(rows) + 1.5), dpi=110)
    for (source, target), count in sorted(edges.items()):
        if source == target:
            continue
        (x1, y1), (x2, y2) = pos[source], pos[target]
        upward = y2 > y1
        ax.annotate(
            "",
            xy=(x2, y2 + (-0.3 if upward else 0.3)),
            xytext=(x1, y1 + (0.3 if upward else -0.3)),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#d62728" if upward else "#777777",
                "lw": 0.6 + 0.25 * min(count, 8),
                "alpha": 0.75,
                "shrinkA": 2,
                "shrinkB": 2,
                "connectionstyle": "arc3,rad=0.08",
            },
        )
    for node, (x, y) in pos.items():
        ax.add_patch(
            FancyBboxPatch(
                (x - 1.2, y - 0.3),
                2.4,
                0.6,
                boxstyle="round,pad=0.02",
                facecolor="#f2f0ff",
                edgecolor="#7c6fd6",
                linewidth=1.3,
            )
        )
        ax.text(x, y, f"{node}\n{sizes[node]} lines", ha="center", va="center", fontsize=8.5)
    xs = [x for x, _ in pos.values()]
    ys = [y for _, y in pos.values()]
    ax.set_xlim(min(xs) - 1.6, max(xs) + 1.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_title(title + "  (arrows: imports, lower = imported by those above; red = upward)")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--depth", type=int, default=2, help="folder depth to group by")
    parser.add_argument("--title", default="Import graph")
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        help="a module drawn as its own box (repeatable), e.g. graph.builder",
    )
    args = parser.parse_args()
    found = modules(args.root)
    graph = {name: imports(path, name, set(found)) for name, path in found.items()}
    folders = {
        name: (name.replace(".", "/") + ".py")
        if name in args.split
        else folder_of(name, path, args.depth)
        for name, path in found.items()
    }
    sizes: dict[str, int] = defaultdict(int)
    for name, path in found.items():
        sizes[folders[name]] += len(path.read_text(encoding="utf-8").splitlines())
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for source, targets in graph.items():
        for target in targets:
            edges[(folders[source], folders[target])] += 1
    draw(edges, sizes, args.title, args.out)
    report = {
        "modules": len(found),
        "folders": dict(sorted(sizes.items())),
        "module_cycles": cycles(graph),
        "folder_edges": {f"{s} -> {t}": n for (s, t), n in sorted(edges.items()) if s != t},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
