"""How well `chatbot tag-documents` would tag a knowledge base whose owners are known: the
sample in `knowledge/{audrey,carole,shared}/`, each file's folder being its true owner.

The same code path as the command (`ingest.tagging`), on the same chunks ingestion makes, with
no database: v1's rows are chunks of files too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.domain import AGENT_OWNERS
from ingest.loaders import chunk_markdown, read_sources
from ingest.tagging import document_probabilities, owner_from
from providers.embeddings import EmbeddingCache
from providers.route_classifier import RouteClassifier


async def evaluate(
    root: Path, classifier: RouteClassifier, embeddings: EmbeddingCache
) -> dict[str, Any]:
    """Per-document accuracy and confusion of the tagger on `root/<owner>/` files."""
    rows: list[dict[str, Any]] = []
    for owner in AGENT_OWNERS:
        if not (root / owner).is_dir():
            continue
        files, _ = read_sources(root / owner)
        for file in files:
            chunks = chunk_markdown(file.markdown, fallback_title=file.fallback_title)
            probabilities = await document_probabilities(
                classifier, embeddings, [c.text for c in chunks]
            )
            predicted, confidence = owner_from(probabilities)
            rows.append(
                {
                    "document": file.name,
                    "expected": owner,
                    "predicted": predicted,
                    "confidence": round(confidence, 4),
                    "chunks": len(chunks),
                    "probabilities": probabilities,
                }
            )
    confusion = {e: dict.fromkeys(AGENT_OWNERS, 0) for e in AGENT_OWNERS}
    for row in rows:
        confusion[row["expected"]][row["predicted"]] += 1
    correct = sum(r["expected"] == r["predicted"] for r in rows)
    return {
        "n": len(rows),
        "accuracy": round(correct / len(rows), 4) if rows else 0.0,
        "confusion": confusion,
        "mistakes": [r for r in rows if r["expected"] != r["predicted"]],
        "least_certain": sorted(rows, key=lambda r: r["confidence"])[:8],
    }
