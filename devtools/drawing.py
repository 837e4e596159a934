"""Draw a compiled graph as Mermaid text or as a PNG, offline.

LangGraph's own PNG path calls mermaid.ink (network) or needs graphviz; this lays the nodes
out in layers (longest path from the start) and draws them with matplotlib.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from langgraph.graph.state import CompiledStateGraph


def mermaid(graph: CompiledStateGraph[Any, Any, Any, Any]) -> str:
    """The graph as Mermaid (dashed arrows are conditional edges)."""
    return graph.get_graph().draw_mermaid()


def layers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the length of the longest path reaching it (the graph is a DAG)."""
    incoming: dict[str, list[str]] = defaultdict(list)
    for source, target in edges:
        incoming[target].append(source)
    depth: dict[str, int] = {}

    def visit(node: str, seen: frozenset[str]) -> int:
        if node in depth:
            return depth[node]
        parents = [p for p in incoming[node] if p not in seen]
        depth[node] = 1 + max((visit(p, seen | {node}) for p in parents), default=-1)
        return depth[node]

    for node in nodes:
        visit(node, frozenset())
    return depth


def draw_png(graph: CompiledStateGraph[Any, Any, Any, Any], path: Path) -> Path:
    """Render the graph to `path` (PNG), top to bottom."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    drawable = graph.get_graph()
    names = {node.id: node.name for node in drawable.nodes.values()}
    nodes = list(names)
    edges = [(e.source, e.target, bool(e.conditional)) for e in drawable.edges]
    depth = layers(nodes, [(s, t) for s, t, _ in edges])
    by_layer: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        by_layer[depth[node]].append(node)
    width = max(len(group) for group in by_layer.values())
    positions: dict[str, tuple[float, float]] = {}
    for level, group in by_layer.items():
        for i, node in enumerate(group):
            positions[node] = ((i - (len(group) - 1) / 2) * 2.4, -level * 1.6)

    fig, ax = plt.subplots(figsize=(max(6.0, 2.6 * width), 1.7 * len(by_layer) + 0.6), dpi=120)
    box_w, box_h = 1.7, 0.6
    for source, target, conditional in edges:
        (x1, y1), (x2, y2) = positions[source], positions[target]
        ax.annotate(
            "",
            xy=(x2, y2 + box_h / 2),
            xytext=(x1, y1 - box_h / 2),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#555555",
                "linestyle": "--" if conditional else "-",
                "shrinkA": 2,
                "shrinkB": 2,
            },
        )
    for node, (x, y) in positions.items():
        terminal = node in ("__start__", "__end__")
        ax.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.25" if terminal else "round,pad=0.02",
                facecolor="#ffffff" if terminal else "#f2f0ff",
                edgecolor="#7c6fd6",
                linewidth=1.4,
            )
        )
        label = names[node].strip("_") if terminal else names[node]
        ax.text(x, y, label, ha="center", va="center", fontsize=11, family="DejaVu Sans")
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    ax.set_xlim(min(xs) - box_w, max(xs) + box_w)
    ax.set_ylim(min(ys) - box_h, max(ys) + box_h)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
