"""The `documents` table: chunks, their embeddings, and the hybrid search over them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from core.domain import AgentOwner, Passage
from core.settings import Settings
from store.postgres import Connection, Pool
from store.sentences import as_array

# A scope's name in `search_scopes` (the retrieve node names them by route).
Scope = TypeVar("Scope", bound=str)


class EmbeddingMismatch(Exception):
    """The index holds embeddings of another model or size than the one configured."""


@dataclass(frozen=True)
class ChunkRow:
    """One chunk ready to be written."""

    content: str
    embedding: np.ndarray[Any, np.dtype[np.float32]]
    content_hash: str
    chunk_index: int
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SearchTuning:
    """Knobs of `match_documents_hybrid` (settings SEARCH_*; `python -m bench.retrieval`
    measures them on 100,000 chunks)."""

    candidates: int
    """Rows each path (vector, full text) brings to the fusion; at least 4 x k."""
    ef_search: int
    """HNSW candidate list size: higher finds more of the true nearest rows, slower."""
    max_scan_tuples: int
    """How far a filtered HNSW scan may walk before it gives up (pgvector's iterative scan)."""
    text_budget: int
    """Most chunks the full-text path ranks; its words are chosen to stay under it."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchTuning:
        return cls(
            candidates=settings.search_candidates,
            ef_search=settings.search_ef_search,
            max_scan_tuples=settings.search_max_scan_tuples,
            text_budget=settings.search_text_budget,
        )


async def search_hybrid(
    pool: Pool,
    embedding: np.ndarray[Any, np.dtype[np.float32]],
    text: str,
    agents: Sequence[AgentOwner],
    k: int,
    tuning: SearchTuning | None = None,
) -> list[Passage]:
    """Vector + French full-text search restricted to `agents`, fused by reciprocal rank."""
    return (await search_scopes(pool, embedding, text, {"": agents}, k, tuning))[""]


async def search_hybrid_on(
    conn: Connection,
    embedding: np.ndarray[Any, np.dtype[np.float32]],
    text: str,
    agents: Sequence[AgentOwner],
    k: int,
    tuning: SearchTuning | None = None,
) -> list[Passage]:
    """`search_hybrid` on a connection the caller holds."""
    return (await search_scopes_on(conn, embedding, text, {"": agents}, k, tuning))[""]


async def search_scopes(
    pool: Pool,
    embedding: np.ndarray[Any, np.dtype[np.float32]],
    text: str,
    scopes: Mapping[Scope, Sequence[AgentOwner]],
    k: int,
    tuning: SearchTuning | None = None,
) -> dict[Scope, list[Passage]]:
    """`search_hybrid` for several sets of owners at once: one statement, one round trip and
    one connection for all of them (the retrieve node searches every route's scope)."""
    async with pool.connection() as conn:
        return await search_scopes_on(conn, embedding, text, scopes, k, tuning)


async def search_scopes_on(
    conn: Connection,
    embedding: np.ndarray[Any, np.dtype[np.float32]],
    text: str,
    scopes: Mapping[Scope, Sequence[AgentOwner]],
    k: int,
    tuning: SearchTuning | None = None,
) -> dict[Scope, list[Passage]]:
    """`search_scopes` on a connection the caller holds.

    With `tuning` (the server), one statement reads the question's words once
    (`chatbot_text_queries`) and searches each scope with `match_documents_hybrid_queries`,
    whose plans each connection caches (migration 009). Without, each scope calls
    `match_documents_hybrid` with the five arguments every version of it takes (001 and 008,
    which `python -m bench.retrieval` measures on the same data)."""
    names = list(scopes)
    if not names:
        return {}
    params: dict[str, Any] = {
        "embedding": embedding,
        "text": text,
        "k": k,
        "candidates": max(tuning.candidates if tuning else 40, 4 * k),
    }
    rows_sql = []
    for i, name in enumerate(names):
        params[f"scope{i}"] = i
        params[f"agents{i}"] = list(scopes[name])
        rows_sql.append(
            sql.SQL("({}::int, {}::text[])").format(
                sql.Placeholder(f"scope{i}"), sql.Placeholder(f"agents{i}")
            )
        )
    if tuning is None:
        # The function runs once per scope (LATERAL), in the order the scopes were given; the
        # query vector is sent once.
        source = sql.SQL(
            "(values {rows}) as s(scope, agents) cross join lateral match_documents_hybrid("
            "%(embedding)s, %(text)s, s.agents, %(k)s, %(candidates)s) with ordinality as m"
        )
    else:
        params |= {
            "ef": tuning.ef_search,
            "scan": tuning.max_scan_tuples,
            "budget": tuning.text_budget,
        }
        source = sql.SQL(
            "chatbot_text_queries(%(text)s, %(budget)s) as q "
            "cross join (values {rows}) as s(scope, agents) "
            "cross join lateral match_documents_hybrid_queries("
            "%(embedding)s, q.rank_query, q.match_query, s.agents, %(k)s, %(candidates)s, "
            "ef_search => %(ef)s, max_scan_tuples => %(scan)s, text_budget => %(budget)s"
            ") with ordinality as m"
        )
    query = sql.SQL(
        "select s.scope, m.id, m.content, m.metadata, m.agent_owner, m.source, m.similarity, "
        "m.score from {source} order by s.scope, m.ordinality"
    ).format(source=source.format(rows=sql.SQL(", ").join(rows_sql)))
    cur = await conn.execute(query, params)
    found: dict[Scope, list[Passage]] = {name: [] for name in names}
    for row in await cur.fetchall():
        found[names[row["scope"]]].append(
            Passage(
                id=row["id"],
                content=row["content"] or "",
                source=row["source"] or "",
                title=str((row["metadata"] or {}).get("title", "")),
                section=str((row["metadata"] or {}).get("section", "")),
                agent_owner=row["agent_owner"],
                similarity=float(row["similarity"] or 0.0),
                score=float(row["score"]),
            )
        )
    return found


async def index_dimensions(pool: Pool) -> int | None:
    """The declared size of `documents.embedding` (None if the column has no fixed size)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select atttypmod from pg_attribute "
            "where attrelid = 'documents'::regclass and attname = 'embedding'"
        )
        row = await cur.fetchone()
    if row is None or row["atttypmod"] is None or row["atttypmod"] < 0:
        return None
    return int(row["atttypmod"])


async def embedding_models(pool: Pool) -> dict[str | None, int]:
    """How many embedded chunks each embedding model produced."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select embedding_model, count(*) as n from documents "
            "where embedding is not null group by embedding_model"
        )
        rows = await cur.fetchall()
    return {row["embedding_model"]: int(row["n"]) for row in rows}


async def check_embedding_compatible(pool: Pool, model: str, dimensions: int) -> None:
    """Refuse to put `model` vectors beside another model's, or into a column of another size.

    An empty table is simply resized: there is nothing to re-embed.
    """
    declared = await index_dimensions(pool)
    if declared is not None and declared != dimensions and not await count_by_agent(pool):
        async with pool.connection() as conn, conn.transaction():
            await _resize_column(conn, dimensions)
            await _create_index(conn)
        declared = dimensions
    if declared is not None and declared != dimensions:
        raise EmbeddingMismatch(
            f"documents.embedding holds {declared}-dimension vectors but {model} produces "
            f"{dimensions}. Re-embed the knowledge base with `chatbot reembed` instead of mixing "
            "sizes in one index."
        )
    others = {name: n for name, n in (await embedding_models(pool)).items() if name != model}
    if others:
        listing = ", ".join(f"{name or 'unknown'} ({n} chunks)" for name, n in others.items())
        raise EmbeddingMismatch(
            f"documents already holds embeddings from {listing}; refusing to add {model} "
            "vectors to the same index. Re-embed everything with `chatbot reembed`, or set "
            "EMBEDDING_MODEL back to the model the index was built with."
        )


async def _resize_column(conn: Connection, dimensions: int) -> None:
    """Give `documents.embedding` a new size, emptying it and dropping its index (call inside
    a transaction that ends with `_create_index`, so readers never see the gap)."""
    await conn.execute("drop index if exists documents_embedding_hnsw_idx")
    await conn.execute(
        f"alter table documents alter column embedding type vector({int(dimensions)}) "
        "using null".encode()
    )


async def _create_index(conn: Connection) -> None:
    await conn.execute(
        "create index documents_embedding_hnsw_idx on documents "
        "using hnsw (embedding vector_cosine_ops)"
    )


class StoredChunk(BaseModel):
    """A chunk as stored, for re-embedding."""

    id: int
    content: str
    title: str
    section: str
    source: str = ""
    agent_owner: AgentOwner = "shared"


async def all_chunks(pool: Pool) -> list[StoredChunk]:
    """Every chunk of the index, in id order."""
    async with pool.connection() as conn:
        # v1 rows may have no text: nothing to embed (their vector is emptied with the column).
        cur = await conn.execute(
            "select id, content, metadata, source, agent_owner from documents "
            "where content is not null order by id"
        )
        rows = await cur.fetchall()
    return [
        StoredChunk(
            id=row["id"],
            content=row["content"],
            title=str((row["metadata"] or {}).get("title", "")),
            section=str((row["metadata"] or {}).get("section", "")),
            source=row["source"] or "",
            agent_owner=row["agent_owner"],
        )
        for row in rows
    ]


async def replace_embeddings(
    pool: Pool,
    model: str,
    dimensions: int,
    vectors: Sequence[tuple[int, np.ndarray[Any, np.dtype[np.float32]]]],
) -> None:
    """Swap every chunk's embedding for `vectors` (id, vector) in one transaction: the
    column is resized, refilled, then re-indexed, so searches see the old index or the new."""
    async with pool.connection() as conn, conn.transaction():
        await _resize_column(conn, dimensions)
        async with conn.cursor() as cur:
            await cur.executemany(
                "update documents set embedding = %s, embedding_model = %s where id = %s",
                [(vector, model, chunk_id) for chunk_id, vector in vectors],
            )
        await _create_index(conn)


async def source_fingerprint(pool: Pool, source: str) -> tuple[str | None, str | None, str | None]:
    """(source hash, embedding model, agent) stored for a source, or Nones if it is new."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select metadata->>'source_hash' as h, embedding_model, agent_owner "
            "from documents where source = %s limit 1",
            (source,),
        )
        row = await cur.fetchone()
    if row is None:
        return None, None, None
    return row["h"], row["embedding_model"], row["agent_owner"]


async def replace_source(
    pool: Pool,
    *,
    source: str,
    agent_owner: AgentOwner,
    embedding_model: str,
    chunks: Sequence[ChunkRow],
) -> None:
    """Swap a source's chunks for new ones in one transaction (readers never see half)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("delete from documents where source = %s", (source,))
        async with conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, metadata, agent_owner, embedding, "
                "embedding_model, content_hash, source, chunk_index, owner_tagged_by, "
                "owner_tagged_at) values (%s, %s, %s, %s, %s, %s, %s, %s, 'ingest', now())",
                [
                    (
                        chunk.content,
                        Jsonb(chunk.metadata),
                        agent_owner,
                        chunk.embedding,
                        embedding_model,
                        chunk.content_hash,
                        source,
                        chunk.chunk_index,
                    )
                    for chunk in chunks
                ],
            )


async def delete_sources(pool: Pool, sources: Sequence[str]) -> int:
    """Remove every chunk of the given sources; returns the number of rows removed."""
    if not sources:
        return 0
    async with pool.connection() as conn:
        cur = await conn.execute("delete from documents where source = any(%s)", (list(sources),))
        return cur.rowcount


async def sources_under(pool: Pool, prefix: str) -> list[str]:
    """The sources whose name starts with `prefix` (to prune deleted files)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select distinct source from documents where starts_with(source, %s)", (prefix,)
        )
        rows = await cur.fetchall()
    return [str(row["source"]) for row in rows]


@asynccontextmanager
async def exclusive_ingestion(pool: Pool) -> AsyncIterator[None]:
    """Hold the knowledge base's ingestion lock (several processes start at once): a
    transaction-scoped advisory lock, so it also works through a transaction pooler."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(hashtext('chatbot-ingestion'))")
        yield


async def count_by_agent(pool: Pool) -> dict[str, int]:
    """Chunks per owner, as the seed's step-1 check shows them."""
    async with pool.admit() as conn:
        cur = await conn.execute(
            "select agent_owner, count(*) as n from documents group by agent_owner"
        )
        rows = await cur.fetchall()
    return {str(row["agent_owner"]): int(row["n"]) for row in rows}


# Who set a document's owner (migration 007); NULL: a v1 row nobody has tagged yet.
TaggedBy = Literal["ingest", "classifier", "manual"]

# Which document a row belongs to: v2's `source` column, else a file name a v1 loader kept in
# metadata ("blob" is what n8n's default loader writes for every file, so it names none), else
# the row alone.
_DOCUMENT_KEY = """coalesce(
  nullif(source, ''),
  nullif(nullif(metadata->>'source', ''), 'blob'),
  nullif(metadata->>'file_name', ''),
  nullif(metadata->>'fileName', ''),
  nullif(metadata->>'filename', ''),
  nullif(metadata->>'file_path', ''),
  nullif(metadata->>'url', ''),
  nullif(metadata->>'title', ''),
  'row:' || id::text
)"""


class TaggableChunk(BaseModel):
    """A row whose owner `chatbot tag-documents` may set. Ids are text: v1 tables may not use
    bigint keys."""

    id: str
    document: str
    content: str
    agent_owner: str
    owner_tagged_by: str | None


async def chunks_to_tag(
    pool: Pool, *, document: str | None = None, include_tagged: bool = False
) -> list[TaggableChunk]:
    """Rows with text whose owner nobody has decided yet (or, with `include_tagged`, also those
    the classifier decided), optionally only the documents whose key matches `document` (a SQL
    LIKE pattern: `%` is any text). Rows ingested or tagged by hand are never included."""
    wanted = ("classifier",) if include_tagged else ()
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"select id::text as id, {_DOCUMENT_KEY} as document, content, agent_owner, "
            "owner_tagged_by from documents "
            "where content is not null and btrim(content) <> '' "
            "and (owner_tagged_by is null or owner_tagged_by = any(%s)) "
            f"and (%s::text is null or {_DOCUMENT_KEY} like %s) "
            "order by document, id".encode(),
            (list(wanted), document, document),
        )
        rows = await cur.fetchall()
    return [TaggableChunk.model_validate(row) for row in rows]


async def chunks_of(pool: Pool, document: str) -> list[TaggableChunk]:
    """Every row of the documents whose key matches `document` (a LIKE pattern), whoever
    tagged them: what a manual correction applies to."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"select id::text as id, {_DOCUMENT_KEY} as document, coalesce(content, '') as "
            "content, agent_owner, owner_tagged_by from documents "
            f"where {_DOCUMENT_KEY} like %s order by document, id".encode(),
            (document,),
        )
        rows = await cur.fetchall()
    return [TaggableChunk.model_validate(row) for row in rows]


async def untagged_rows(pool: Pool) -> int:
    """Rows whose owner nobody has decided yet (the v1 rows after migration)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select count(*) as n from documents where owner_tagged_by is null"
        )
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def set_owner(
    pool: Pool,
    assignments: Sequence[tuple[Sequence[str], AgentOwner, float | None]],
    tagged_by: TaggedBy,
) -> int:
    """Give each group of row ids its owner, in one transaction; returns the rows changed.

    A classifier run only touches rows still untagged or tagged by the classifier, so it never
    overwrites a manual or an ingest decision, and running it twice changes nothing.
    """
    guard = (
        "and (owner_tagged_by is null or owner_tagged_by = 'classifier')"
        if tagged_by == "classifier"
        else ""
    )
    changed = 0
    async with pool.connection() as conn, conn.transaction():
        for ids, owner, confidence in assignments:
            cur = await conn.execute(
                "update documents set agent_owner = %s, owner_tagged_by = %s, "
                "owner_confidence = %s, owner_tagged_at = now() "
                f"where id::text = any(%s) {guard}".encode(),
                (owner, tagged_by, confidence, list(ids)),
            )
            changed += cur.rowcount
    return changed


@dataclass(frozen=True)
class SourcedChunk:
    """A chunk with its owner and source, for bulk loads."""

    source: str
    agent_owner: AgentOwner
    chunk: ChunkRow


async def bulk_load(
    pool: Pool,
    chunks: Iterable[SourcedChunk],
    embedding_model: str,
    maintenance_work_mem: str = "1GB",
) -> int:
    """Append many chunks at once (the 100k-chunk benchmark): COPY them with the vector indexes
    dropped, then build each once, far faster than growing them row by row. Returns the number
    of rows written."""
    written = 0
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                "select indexname, indexdef from pg_indexes "
                "where tablename = 'documents' and schemaname = current_schema() "
                "and indexdef ilike '%% using hnsw %%' order by indexname"
            )
            vector_indexes = [(row["indexname"], row["indexdef"]) for row in await cur.fetchall()]
            for name, _ in vector_indexes:
                await conn.execute(sql.SQL("drop index {}").format(sql.Identifier(name)))
            async with (
                conn.cursor() as copy_cursor,
                copy_cursor.copy(
                    "copy documents (content, metadata, agent_owner, embedding, embedding_model, "
                    "content_hash, source, chunk_index) from stdin with (format binary)"
                ) as copy,
            ):
                copy.set_types(["text", "jsonb", "text", "vector", "text", "text", "text", "int4"])
                for item in chunks:
                    row = item.chunk
                    await copy.write_row(
                        (
                            row.content,
                            Jsonb(row.metadata),
                            item.agent_owner,
                            row.embedding,
                            embedding_model,
                            row.content_hash,
                            item.source,
                            row.chunk_index,
                        )
                    )
                    written += 1
            # An HNSW build is fast only while its graph fits in maintenance_work_mem.
            await conn.execute(
                "select set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,)
            )
            for _, definition in vector_indexes:
                # The definitions Postgres itself printed for the indexes just dropped.
                await conn.execute(definition.encode())
        # Fresh statistics for the planner, and no dead rows left by an earlier load.
        await conn.execute("vacuum (analyze) documents")
    return written


@dataclass(frozen=True)
class StoredVectors:
    """Every embedded chunk's id, owner and vector (ground truth for recall measurements)."""

    ids: np.ndarray[Any, np.dtype[np.int64]]
    owners: list[str]
    matrix: np.ndarray[Any, np.dtype[np.float32]]


async def stored_vectors(pool: Pool) -> StoredVectors:
    """Every chunk's vector, in id order, read in binary (fast enough for 100k rows)."""
    ids: list[int] = []
    owners: list[str] = []
    rows: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    async with pool.connection() as conn, conn.cursor(binary=True) as cur:
        await cur.execute(
            "select id, agent_owner, embedding from documents "
            "where embedding is not null order by id"
        )
        async for row in cur:
            ids.append(int(row["id"]))
            owners.append(str(row["agent_owner"]))
            rows.append(as_array(row["embedding"]))
    matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    return StoredVectors(np.asarray(ids, dtype=np.int64), owners, matrix)
