"""Tag existing documents by agent (migration guide, phase 1: "Tagger documents existants par
agent"): each document nobody has tagged yet goes to audrey, carole or shared, decided by the
router's classifier on its text.

A document is the rows of one source file (`store.documents` names it); its chunks' class
probabilities are averaged. The agency's own pages (who we are, prices, contact) read as
escalate to the router: they become shared, as does a text neither specialist clearly owns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from core.domain import ROUTES, AgentOwner, Route
from providers.embeddings import EmbeddingCache
from providers.route_classifier import RouteClassifier
from store import documents
from store.postgres import Pool

# A specialist owns a document when she has at least this share of the two specialists'
# probability; below it the text is as much one's as the other's, and both should read it.
SPECIALIST_SHARE = 2 / 3


def owner_from(probabilities: dict[Route, float]) -> tuple[AgentOwner, float]:
    """The owner a document's class probabilities point to, and how sure that is (0..1)."""
    audrey, carole, escalate = (probabilities[r] for r in ("audrey", "carole", "escalate"))
    if escalate >= max(audrey, carole):
        return "shared", escalate
    specialists = audrey + carole
    if max(audrey, carole) < SPECIALIST_SHARE * specialists:
        return "shared", 1.0 - abs(audrey - carole) / specialists
    return ("audrey", audrey) if audrey >= carole else ("carole", carole)


async def document_probabilities(
    classifier: RouteClassifier, embeddings: EmbeddingCache, texts: Sequence[str]
) -> dict[Route, float]:
    """The classifier's probabilities for a document: the mean over its chunks' texts."""
    matrix = []
    for text in texts:
        p = classifier.probabilities(text, await embeddings.query(text))
        matrix.append([p[r] for r in ROUTES])
    mean = np.asarray(matrix).mean(axis=0)
    return {r: round(float(v), 4) for r, v in zip(ROUTES, mean, strict=True)}


@dataclass(frozen=True)
class DocumentTag:
    """The owner decided for one document."""

    document: str
    row_ids: tuple[str, ...]
    owner: AgentOwner
    confidence: float | None
    probabilities: dict[Route, float] = field(default_factory=dict)
    previous_owner: str = "shared"


@dataclass(frozen=True)
class TaggingReport:
    """What a tag-documents run decided (and wrote, unless it was a dry run)."""

    tags: list[DocumentTag]
    rows_written: int
    dry_run: bool
    tagged_by: documents.TaggedBy

    def counts(self) -> dict[AgentOwner, tuple[int, int]]:
        """Documents and rows per owner."""
        result: dict[AgentOwner, tuple[int, int]] = {}
        for owner in ("audrey", "carole", "shared"):
            tags = [t for t in self.tags if t.owner == owner]
            result[owner] = (len(tags), sum(len(t.row_ids) for t in tags))
        return result

    def least_certain(self, n: int) -> list[DocumentTag]:
        """The `n` classifier decisions a person should check first."""
        scored = [t for t in self.tags if t.confidence is not None]
        return sorted(scored, key=lambda t: (t.confidence or 0.0, t.document))[:n]

    def lines(self, show: int = 10) -> list[str]:
        """The report as printed by `chatbot tag-documents`."""
        rows = sum(len(t.row_ids) for t in self.tags)
        out = [f"{len(self.tags)} documents ({rows} rows) to tag ({self.tagged_by})"]
        out.append(f"  {'owner':<8} {'documents':>9} {'rows':>6}")
        for owner, (docs, chunks) in self.counts().items():
            out.append(f"  {owner:<8} {docs:>9} {chunks:>6}")
        doubtful = self.least_certain(show)
        if doubtful:
            out.append("least certain (check these first; fix with --source NAME --agent OWNER):")
            for tag in doubtful:
                probs = ", ".join(f"{r} {tag.probabilities[r]:.2f}" for r in ROUTES)
                out.append(f"  {tag.confidence:.2f}  {tag.owner:<7} {tag.document}  ({probs})")
        out.append(
            "dry run: nothing written"
            if self.dry_run
            else f"written: {self.rows_written} rows (owner_tagged_by = {self.tagged_by})"
        )
        return out


async def tag_documents(
    pool: Pool,
    classifier: RouteClassifier,
    embeddings: EmbeddingCache,
    *,
    document: str | None = None,
    retag: bool = False,
    dry_run: bool = False,
    progress: bool = True,
) -> TaggingReport:
    """Classify the documents nobody tagged yet (with `retag`, also those the classifier
    tagged before) and write their owner. Idempotent: a second run finds nothing to tag."""
    chunks = await documents.chunks_to_tag(pool, document=document, include_tagged=retag)
    by_document: dict[str, list[documents.TaggableChunk]] = defaultdict(list)
    for chunk in chunks:
        by_document[chunk.document].append(chunk)
    tags: list[DocumentTag] = []
    bar = tqdm(total=len(chunks), desc="classifying", unit="row", disable=not progress)
    for name, rows in by_document.items():
        probabilities = await document_probabilities(
            classifier, embeddings, [r.content for r in rows]
        )
        bar.update(len(rows))
        owner, confidence = owner_from(probabilities)
        tags.append(
            DocumentTag(
                document=name,
                row_ids=tuple(r.id for r in rows),
                owner=owner,
                confidence=round(confidence, 4),
                probabilities=probabilities,
                previous_owner=rows[0].agent_owner,
            )
        )
    bar.close()
    written = 0
    if not dry_run:
        written = await documents.set_owner(
            pool, [(t.row_ids, t.owner, t.confidence) for t in tags], "classifier"
        )
    return TaggingReport(tags=tags, rows_written=written, dry_run=dry_run, tagged_by="classifier")


async def set_documents_owner(
    pool: Pool, owner: AgentOwner, *, document: str | None = None, dry_run: bool = False
) -> TaggingReport:
    """Set `owner` by hand: on every row of the documents matching `document` (a correction,
    whoever tagged them), or without `document` on every row nobody has tagged yet."""
    rows = (
        await documents.chunks_of(pool, document)
        if document is not None
        else await documents.chunks_to_tag(pool)
    )
    by_document: dict[str, list[documents.TaggableChunk]] = defaultdict(list)
    for row in rows:
        by_document[row.document].append(row)
    tags = [
        DocumentTag(
            document=name,
            row_ids=tuple(r.id for r in chunk_rows),
            owner=owner,
            confidence=None,
            previous_owner=chunk_rows[0].agent_owner,
        )
        for name, chunk_rows in by_document.items()
    ]
    written = 0
    if not dry_run:
        written = await documents.set_owner(
            pool, [(t.row_ids, owner, None) for t in tags], "manual"
        )
    return TaggingReport(tags=tags, rows_written=written, dry_run=dry_run, tagged_by="manual")
