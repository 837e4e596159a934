"""Knowledge ingestion: files -> chunks -> embeddings -> `documents`, idempotently."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from core.domain import AgentOwner
from core.text import split_sentences
from ingest.loaders import CHUNKER_VERSION, Chunk, chunk_markdown, embedding_text, read_sources
from providers.embeddings import EmbeddingCache
from store import documents, sentences
from store.postgres import Pool

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What an ingest run did, per source."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0

    def summary(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed ({self.chunks} chunks written)"
        )


def _sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


async def ingest_path(
    pool: Pool,
    embeddings: EmbeddingCache,
    path: Path,
    agent: AgentOwner,
    *,
    prune: bool = True,
    batch_size: int = 32,
    progress: bool = True,
) -> IngestReport:
    """Ingest a file or a folder for `agent`.

    A source whose bytes, chunker, owner and embedding model are unchanged is skipped; an
    edited one has its chunks replaced in one transaction; with `prune`, sources that vanished
    from the folder are removed. Refuses to mix embedding models or sizes in one index.
    """
    files, folder = await asyncio.to_thread(read_sources, path)
    await documents.check_embedding_compatible(pool, embeddings.name, embeddings.dimensions)
    report = IngestReport()
    prefix = f"{agent}:"
    pending: list[tuple[str, str, list[Chunk], bool]] = []
    for file in files:
        source = f"{prefix}{file.name}"
        source_hash = _sha256(file.data, CHUNKER_VERSION, agent)
        stored_hash, stored_model, _ = await documents.source_fingerprint(pool, source)
        if stored_hash == source_hash and stored_model == embeddings.name:
            report.unchanged += 1
            continue
        chunks = chunk_markdown(file.markdown, fallback_title=file.fallback_title)
        pending.append((source, source_hash, chunks, stored_hash is not None))
    quoted_by_source = {
        source: list(dict.fromkeys(s for chunk in chunks for s in split_sentences(chunk.text)))
        for source, _, chunks, _ in pending
    }
    total = sum(len(chunks) + len(quoted_by_source[src]) for src, _, chunks, _ in pending)
    bar = tqdm(
        total=total, desc=f"embedding {agent}", unit="text", disable=not progress or not total
    )
    for source, source_hash, chunks, existed in pending:
        vectors: list[np.ndarray[tuple[int], np.dtype[np.float32]]] = []
        for start in range(0, len(chunks), batch_size):
            batch = chunks[start : start + batch_size]
            matrix = await embeddings.embeddings.aembed_documents(
                [embedding_text(c) for c in batch]
            )
            vectors.extend(np.asarray(row, dtype=np.float32) for row in matrix)
            bar.update(len(batch))
        rows = [
            documents.ChunkRow(
                content=chunk.text,
                embedding=vector,
                content_hash=_sha256(chunk.text),
                chunk_index=index,
                metadata={
                    "title": chunk.title,
                    "section": chunk.section,
                    "source_hash": source_hash,
                    "chunker": CHUNKER_VERSION,
                },
            )
            for index, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
        ]
        await documents.replace_source(
            pool, source=source, agent_owner=agent, embedding_model=embeddings.name, chunks=rows
        )
        # The embedded reranker and generator score sentences: embed them now, not per request.
        quoted = quoted_by_source[source]
        for start in range(0, len(quoted), batch_size):
            texts = quoted[start : start + batch_size]
            sentence_vectors = await embeddings.texts(texts)
            await sentences.save(
                pool, embeddings.name, list(zip(texts, sentence_vectors, strict=True))
            )
            bar.update(len(texts))
        report.chunks += len(rows)
        if existed:
            report.updated += 1
        else:
            report.added += 1
    bar.close()
    if prune and folder is not None:
        present = {f"{prefix}{file.name}" for file in files}
        gone = [s for s in await documents.sources_under(pool, prefix + folder) if s not in present]
        report.removed = len(gone)
        await documents.delete_sources(pool, gone)
    return report


async def ingest_knowledge_base(
    pool: Pool, embeddings: EmbeddingCache, root: Path, progress: bool = True
) -> dict[str, IngestReport]:
    """Ingest the sample layout: `root/audrey`, `root/carole`, `root/shared`."""
    owners: Sequence[AgentOwner] = ("audrey", "carole", "shared")
    reports: dict[str, IngestReport] = {}
    for owner in owners:
        folder = root / owner
        if folder.is_dir():
            reports[owner] = await ingest_path(pool, embeddings, folder, owner, progress=progress)
    return reports


def flatten(reports: Iterable[IngestReport]) -> IngestReport:
    """Add several reports up."""
    total = IngestReport()
    for report in reports:
        total.added += report.added
        total.updated += report.updated
        total.unchanged += report.unchanged
        total.removed += report.removed
        total.chunks += report.chunks
    return total
