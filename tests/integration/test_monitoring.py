"""The seed's "Étape 1" and "Étape 6" SQL, verbatim, against our schema."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from store.analytics import read_query
from tests.integration.conftest import fresh_database

SEED_STEP_1 = "SELECT agent_owner, COUNT(*) FROM documents GROUP BY agent_owner;"


async def run(url: str, sql: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cur = await conn.execute(sql.encode())
        return list(await cur.fetchall())


async def test_monitoring_queries_give_the_right_numbers(data_dir: Path) -> None:
    url = await fresh_database(data_dir, "monitoring")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "insert into conversations (id, user_id) values ('a1','u'),('a2','u'),('c1','u'),('v1','u'),('old','u')"
        )
        # v2 turns: user row at t, answer 2 s / 4 s / 3 s later.
        await conn.execute(
            """
            insert into messages (conversation_id, role, content, agent, created_at) values
              ('a1', 'user', 'q', 'audrey', now() - interval '1 hour'),
              ('a1', 'assistant', 'r', 'audrey', now() - interval '1 hour' + interval '2 seconds'),
              ('a2', 'user', 'q', 'audrey', now() - interval '2 hours'),
              ('a2', 'assistant', 'r', 'audrey', now() - interval '2 hours' + interval '4 seconds'),
              ('c1', 'user', 'q', 'carole', now() - interval '3 hours'),
              ('c1', 'assistant', 'r', 'carole', now() - interval '3 hours' + interval '3 seconds'),
              ('v1', 'user', 'q', null, now() - interval '1 hour'),
              ('v1', 'assistant', 'r', null, now() - interval '1 hour' + interval '9 seconds'),
              ('old', 'user', 'q', 'carole', now() - interval '3 days'),
              ('old', 'assistant', 'r', 'carole', now() - interval '3 days' + interval '1 second')
            """
        )
    volume = {
        r["version"]: (r["message_count"], r["conversations"])
        for r in await run(url, read_query("monitoring_1_volume_by_version"))
    }
    assert volume == {"v1": (1, 1), "v2": (3, 3)}
    performance = {
        r["agent"]: (r["avg_seconds"], r["sample_size"])
        for r in await run(url, read_query("monitoring_2_performance_v2"))
    }
    assert performance == {"audrey": (Decimal("3.000000"), 2), "carole": (Decimal("3.000000"), 1)}
    distribution = {
        r["agent"]: (r["count"], r["percentage"])
        for r in await run(url, read_query("monitoring_3_agent_distribution"))
    }
    assert distribution == {"audrey": (2, Decimal("66.67")), "carole": (1, Decimal("33.33"))}


async def test_queries_show_rows_written_by_the_api(
    client: httpx.AsyncClient, services: object
) -> None:
    for payload in (
        {
            "user_id": "mon",
            "conversation_id": "mon-a",
            "message": "Comment automatiser mes emails de bienvenue?",
        },
        {
            "user_id": "mon",
            "conversation_id": "mon-c",
            "message": "Aide-moi à créer un reel viral sur Instagram",
        },
    ):
        assert (await client.post("/api/chat", json=payload)).status_code == 200
    url = services.database_url  # type: ignore[attr-defined]
    volume = {r["version"]: r for r in await run(url, read_query("monitoring_1_volume_by_version"))}
    assert volume["v2"]["message_count"] >= 2
    assert "v1" not in volume
    performance = {r["agent"]: r for r in await run(url, read_query("monitoring_2_performance_v2"))}
    assert {"audrey", "carole"} <= set(performance)
    assert all(0 < float(r["avg_seconds"]) < 5 for r in performance.values())
    distribution = {
        r["agent"] for r in await run(url, read_query("monitoring_3_agent_distribution"))
    }
    assert {"audrey", "carole"} <= distribution
    step_1 = {r["agent_owner"]: r["count"] for r in await run(url, SEED_STEP_1)}
    assert set(step_1) == {"audrey", "carole", "shared"}
    assert all(n > 0 for n in step_1.values())
    analytics = (await client.get("/api/analytics")).json()
    assert {r["agent"] for r in analytics["agent_distribution"]} >= {"audrey", "carole"}
