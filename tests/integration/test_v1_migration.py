"""Étape 1 of the migration guide on a database shaped like v1's (n8n + Supabase): the
migrations add what v2 needs without losing a row, the guide's step-1 query and step-6
monitoring queries read it right after (v1 rows counted as v1), v2 writes beside v1's rows, and
`chatbot tag-documents` tags v1's documents by agent."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from cli import main
from core.settings import ROOT, get_settings
from ingest.loaders import chunk_markdown, read_sources
from ingest.tagging import set_documents_owner, tag_documents
from providers.embeddings import EmbeddingCache
from providers.route_classifier import RouteClassifier
from store import messages
from store.analytics import read_query
from store.documents import untagged_rows
from store.migrations import MIGRATIONS_DIR, apply_migrations
from store.postgres import open_pool, start_embedded

SEED_STEP_1 = "SELECT agent_owner, COUNT(*) FROM documents GROUP BY agent_owner;"

# v1's tables as the n8n workflow and Supabase's vector-store template made them: documents
# with OpenAI's 1536-d vectors and no owner, messages with no agent, conversations.
V1_SCHEMA = """
create extension if not exists vector;
create table conversations (
  id text primary key,
  user_id text,
  created_at timestamptz not null default now()
);
create table messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id text not null references conversations (id),
  role text not null,
  content text not null,
  created_at timestamptz not null default now()
);
create table documents (
  id bigserial primary key,
  content text,
  metadata jsonb,
  embedding vector(1536)
);
create function match_documents (
  query_embedding vector(1536), match_count int default null, filter jsonb default '{}'
) returns table (id bigint, content text, metadata jsonb, similarity float)
language plpgsql as $$
begin
  return query
  select d.id, d.content, d.metadata, 1 - (d.embedding <=> query_embedding) as similarity
  from documents d where d.metadata @> filter
  order by d.embedding <=> query_embedding limit match_count;
end;
$$;
"""

# Two files of each folder of the sample knowledge base (the first ones, by name), loaded the
# way v1's loaders stored them: LangChain's metadata.source, n8n's file_name next to
# source "blob", and n8n's bare "blob" (no file name at all: each row is its own document).
V1_FILES = {
    "audrey": ("ab-test-emails.md", "automatisations-zapier.md"),
    "carole": ("accroches-video-hooks.md", "appels-a-l-action.md"),
    "shared": ("ce-que-fait-le-chatbot.md", "confidentialite-donnees.md"),
}


def v1_documents() -> list[tuple[str, dict[str, Any] | None, str]]:
    """(content, metadata, folder) rows for V1_FILES, and one row with no text."""
    rows: list[tuple[str, dict[str, Any] | None, str]] = []
    for folder, names in V1_FILES.items():
        for name in names:
            [file], _ = read_sources(ROOT / "knowledge" / folder / name)
            for i, chunk in enumerate(chunk_markdown(file.markdown, file.fallback_title)):
                metadata: dict[str, Any]
                if folder == "audrey":
                    metadata = {"source": name, "loc": {"chunk": i}}
                elif folder == "carole":
                    metadata = {"source": "blob", "file_name": name, "blobType": "text/markdown"}
                else:
                    metadata = {"source": "blob", "blobType": "text/markdown"}
                rows.append((chunk.text, metadata, folder))
    return rows


async def v1_database(data_dir: Path, name: str) -> str:
    """A new database on the session's server holding v1's schema and rows (not migrated)."""
    url = start_embedded(data_dir)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'drop database if exists "{name}"'.encode())
        await conn.execute(f'create database "{name}"'.encode())
    scoped = url.replace("/postgres?", f"/{name}?")
    rng = np.random.default_rng(1)
    async with await psycopg.AsyncConnection.connect(scoped, autocommit=True) as conn:
        await conn.execute(V1_SCHEMA.encode())
        await conn.execute(
            "insert into conversations (id, user_id, created_at) values "
            "('v1-conv-a', 'user-a', now() - interval '3 hours'), "
            "('v1-conv-b', 'user-b', now() - interval '2 hours'), "
            "('v1-conv-old', 'user-a', now() - interval '10 days')"
        )
        await conn.execute(
            """
            insert into messages (conversation_id, role, content, created_at) values
              ('v1-conv-a', 'user', 'Comment automatiser mes mails ?', now() - interval '3 hours'),
              ('v1-conv-a', 'assistant', 'Avec un scénario.', now() - interval '3 hours' + interval '9 seconds'),
              ('v1-conv-a', 'user', 'et le délai ?', now() - interval '170 minutes'),
              ('v1-conv-a', 'assistant', 'Trois jours.', now() - interval '170 minutes' + interval '8 seconds'),
              ('v1-conv-b', 'user', 'Une idée de reel ?', now() - interval '2 hours'),
              ('v1-conv-b', 'assistant', 'Les coulisses.', now() - interval '2 hours' + interval '10 seconds'),
              ('v1-conv-old', 'user', 'Bonjour', now() - interval '10 days'),
              ('v1-conv-old', 'assistant', 'Bonjour !', now() - interval '10 days' + interval '7 seconds')
            """
        )
        async with conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, metadata, embedding) values (%s, %s, %s::vector)",
                [
                    (
                        content,
                        json.dumps(metadata),
                        json.dumps(rng.normal(size=1536).round(5).tolist()),
                    )
                    for content, metadata, _ in v1_documents()
                ],
            )
        await conn.execute("insert into documents (content, metadata) values (null, null)")
    return scoped


async def rows(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cur = await conn.execute(sql.encode(), params)
        return list(await cur.fetchall())


async def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every v1 row, as v1's columns hold it."""
    return {
        "conversations": await rows(url, "select id, user_id from conversations order by id"),
        "messages": await rows(
            url, "select id, conversation_id, role, content, created_at from messages order by id"
        ),
        "documents": await rows(
            url, "select id, content, metadata, embedding::text as e from documents order by id"
        ),
    }


async def test_migrations_keep_every_v1_row_and_the_guides_queries_read_them(
    data_dir: Path,
) -> None:
    url = await v1_database(data_dir, "v1_shape")
    before = await snapshot(url)

    applied = await apply_migrations(url)

    assert applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
    assert await snapshot(url) == before
    # Pasted again in Supabase's SQL editor, file by file: nothing fails, nothing changes.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            await conn.execute(path.read_text(encoding="utf-8").encode())
    assert await apply_migrations(url) == []
    assert await snapshot(url) == before

    # Step 1, right after the migrations: every v1 document has the default owner and nobody
    # has tagged it yet (that is `chatbot tag-documents`' job, below).
    documents = len(before["documents"])
    step_1 = {r["agent_owner"]: r["count"] for r in await rows(url, SEED_STEP_1)}
    assert step_1 == {"shared": documents}
    untagged = await rows(url, "select count(*) as n from documents where owner_tagged_by is null")
    assert untagged == [{"n": documents}]

    # Step 6: v1's answers of the last 24 hours count as v1; there is no v2 row yet.
    volume = {
        r["version"]: (r["message_count"], r["conversations"])
        for r in await rows(url, read_query("monitoring_1_volume_by_version"))
    }
    assert volume == {"v1": (3, 2)}
    assert await rows(url, read_query("monitoring_2_performance_v2")) == []
    assert await rows(url, read_query("monitoring_3_agent_distribution")) == []

    # v2 writes beside them, in a new conversation and in one of v1's.
    pool = await open_pool(url)
    try:
        for conversation, user, agent in (
            ("test-conv-1", "test-migration", "audrey"),
            ("v1-conv-b", "user-b", "carole"),
        ):
            question, answer = uuid.uuid4(), uuid.uuid4()
            await messages.save_user_message(
                pool,
                message_id=question,
                reply_id=answer,
                conversation_id=conversation,
                user_id=user,
                content="Comment automatiser mes emails de bienvenue?",
                metadata={},
                worker="test",
                lease_seconds=60,
            )
            await messages.finish_turn(
                pool,
                user_message_id=question,
                conversation_id=conversation,
                user_id=user,
                status="answered",
                answer=messages.Answer(
                    message_id=answer,
                    content="Voici.",
                    agent=agent,
                    status="complete",
                    latency_ms=1200,
                    model="extractive/v1",
                    metadata={},
                ),
            )
        history = await messages.list_messages(pool, "v1-conv-b")
    finally:
        await pool.close()
    assert [m.agent for m in history] == [None, None, "carole", "carole"]
    volume = {
        r["version"]: (r["message_count"], r["conversations"])
        for r in await rows(url, read_query("monitoring_1_volume_by_version"))
    }
    assert volume == {"v1": (3, 2), "v2": (2, 2)}
    performance = {r["agent"] for r in await rows(url, read_query("monitoring_2_performance_v2"))}
    assert performance == {"audrey", "carole"}
    distribution = {
        r["agent"]: r["count"]
        for r in await rows(url, read_query("monitoring_3_agent_distribution"))
    }
    assert distribution == {"audrey": 1, "carole": 1}
    for table in ("conversations", "messages", "documents"):
        now = await rows(url, f"select count(*) as n from {table}")
        added = {"conversations": 1, "messages": 4, "documents": 0}[table]
        assert now == [{"n": len(before[table]) + added}]


async def test_tag_documents_tags_v1_documents_by_agent(
    data_dir: Path, embeddings: EmbeddingCache
) -> None:
    url = await v1_database(data_dir, "v1_tagging")
    await apply_migrations(url)
    total = len(v1_documents()) + 1
    pool = await open_pool(url)
    try:
        dry = await tag_documents(
            pool, RouteClassifier.load(), embeddings, dry_run=True, progress=False
        )
        assert dry.rows_written == 0
        assert await untagged_rows(pool) == total
        # Files named in metadata are one document each; n8n's bare "blob" rows stand alone.
        named = {t.document for t in dry.tags if not t.document.startswith("row:")}
        assert named == {*V1_FILES["audrey"], *V1_FILES["carole"]}
        blob_rows = sum(1 for _, _, folder in v1_documents() if folder == "shared")
        assert len(dry.tags) == len(named) + blob_rows

        report = await tag_documents(pool, RouteClassifier.load(), embeddings, progress=False)
        owners = {t.document: t.owner for t in report.tags}
        for folder in ("audrey", "carole"):
            for name in V1_FILES[folder]:
                assert owners[name] == folder, report.lines()
        # Everything with text is tagged, the row without text is left alone and reported.
        assert report.rows_written == total - 1
        assert await untagged_rows(pool) == 1
        assert all(t.confidence is not None and 0 < t.confidence <= 1 for t in report.tags)
        doubtful = [t.confidence or 0.0 for t in report.least_certain(3)]
        assert doubtful == sorted(doubtful)

        again = await tag_documents(pool, RouteClassifier.load(), embeddings, progress=False)
        assert (again.tags, again.rows_written) == ([], 0)

        # A person corrects one document; a later re-classification leaves it alone.
        fixed = await set_documents_owner(pool, "shared", document=V1_FILES["audrey"][0])
        assert fixed.rows_written == len(fixed.tags[0].row_ids)
        retag = await tag_documents(
            pool, RouteClassifier.load(), embeddings, retag=True, progress=False
        )
        assert V1_FILES["audrey"][0] not in {t.document for t in retag.tags}
    finally:
        await pool.close()
    step_1 = {r["agent_owner"]: r["count"] for r in await rows(url, SEED_STEP_1)}
    assert set(step_1) == {"audrey", "carole", "shared"}
    assert sum(step_1.values()) == total
    manual = await rows(
        url,
        "select distinct agent_owner, owner_tagged_by from documents "
        "where metadata->>'source' = %s",
        (V1_FILES["audrey"][0],),
    )
    assert manual == [{"agent_owner": "shared", "owner_tagged_by": "manual"}]


def test_tag_documents_command(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chatbot tag-documents`, run in this process as the console script runs it."""
    url = asyncio.run(v1_database(data_dir, "v1_cli"))
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:

        def chatbot(*args: str) -> tuple[int, str, str]:
            code = main(["tag-documents", *args])
            out, err = capsys.readouterr()
            return code, out, err

        code, out, _ = chatbot("--dry-run", "--show", "3")
        assert code == 0
        assert "dry run: nothing written" in out
        assert "least certain" in out
        assert "documents by agent_owner (step 1): shared " in out
        code, out, _ = chatbot()
        assert code == 0
        assert "owner_tagged_by = classifier" in out
        assert "rows nobody has tagged: 1" in out
        code, out, _ = chatbot()
        assert "0 documents (0 rows) to tag" in out
        code, out, _ = chatbot("--source", V1_FILES["carole"][0], "--agent", "shared")
        assert code == 0
        assert "owner_tagged_by = manual" in out
        code, _, err = chatbot("--source", "nope.md", "--agent", "audrey")
        assert code == 2
        assert "no document matches" in err
    finally:
        get_settings.cache_clear()
