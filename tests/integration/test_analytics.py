"""Per agent and per day analytics and the guide's KPIs, on a database with known rows: v2
turns, failures, hand-off rows and v1 rows (which must not count)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from core.kpis import ERROR_RATE, ESCALATION_RATE, RESPONSE_SECONDS, evaluate
from store.analytics import daily_stats, kpi_counts, read_query
from store.postgres import open_pool
from tests.integration.conftest import fresh_database

# (conversation, agent of the turn, user status, answer latency ms or None, rating)
TURNS: list[tuple[str, str | None, str, int | None, str | None]] = [
    ("a1", "audrey", "answered", 1000, "up"),
    ("a2", "audrey", "answered", 2000, "down"),
    ("a3", "audrey", "answered", 9000, None),
    ("c1", "carole", "answered", 3000, None),
    ("c2", "carole", "failed", 4000, None),  # interrupted answer
    ("e1", "escalate", "answered", 500, None),
    ("n1", None, "failed", None, None),  # failed before routing: no answer
]


@pytest.fixture(scope="module")
async def url(data_dir: Path) -> str:
    url = await fresh_database(data_dir, "analytics")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        t0 = "now() - interval '2 hours'"
        for conversation, agent, status, latency, rating in [
            *TURNS,
            ("old", "carole", "answered", 1000, None),
        ]:
            at = "now() - interval '3 days'" if conversation == "old" else t0
            await conn.execute(
                "insert into conversations (id, user_id) values (%s, 'u')", (conversation,)
            )
            await conn.execute(
                f"insert into messages (conversation_id, user_id, role, content, agent, status, metadata, created_at) "
                f"values (%s, 'u', 'user', 'q', %s, %s, '{{\"api_version\": \"v2\"}}', {at})".encode(),
                (conversation, agent, status),
            )
            if latency is None:
                continue
            cur = await conn.execute(
                f"insert into messages (conversation_id, user_id, role, content, agent, status, latency_ms, metadata, created_at) "
                f"values (%s, 'u', 'assistant', 'r', %s, %s, %s, "
                f"""'{{"usage": {{"cost_usd": 0.001}}, "first_token_ms": 300}}', {at} + interval '1 second') returning id""".encode(),
                (
                    conversation,
                    agent,
                    "complete" if status == "answered" else "interrupted",
                    latency,
                ),
            )
            row = await cur.fetchone()
            assert row is not None
            if rating:
                await conn.execute(
                    "insert into feedback (message_id, conversation_id, user_id, rating) values (%s, %s, 'u', %s)",
                    (row[0], conversation, rating),
                )
        # A hand-off: the escalated conversation's held message, the acknowledgement, the
        # team's reply and the hand-back. None of them is a turn or an answer.
        await conn.execute(
            f"""insert into messages (conversation_id, user_id, role, content, agent, status, metadata, created_at) values
              ('e1', 'u', 'user', 'vous êtes là ?', null, 'answered', '{{"handoff_id": "x"}}', {t0} + interval '2 seconds'),
              ('e1', 'u', 'notice', 'transmis', null, 'complete', '{{"kind": "handoff_ack"}}', {t0} + interval '2 seconds'),
              ('e1', 'u', 'human_agent', 'Bonjour, Sophie', null, 'complete', '{{}}', {t0} + interval '3 seconds'),
              ('e1', 'u', 'notice', 'rendu', null, 'complete', '{{"kind": "handoff_released"}}', {t0} + interval '4 seconds')
            """.encode()
        )
        # v1 (n8n) rows: no agent, the default status.
        await conn.execute("insert into conversations (id, user_id) values ('v1', 'u')")
        await conn.execute(
            f"insert into messages (conversation_id, role, content, created_at) values "
            f"('v1', 'user', 'q', {t0}), ('v1', 'assistant', 'r', {t0} + interval '8 seconds')".encode()
        )
    return url


async def test_daily_stats_per_agent(url: str) -> None:
    pool = await open_pool(url, 2)
    try:
        stats = await daily_stats(pool, 7)
    finally:
        await pool.close()
    days = sorted({s.day for s in stats})
    assert len(days) == 2  # the old row's day, and today's
    today = {s.agent: s for s in stats if s.day == days[-1]}
    assert set(today) == {None, "audrey", "carole", "escalate", "none"}
    total = today[None]
    assert (total.turns, total.errors, total.answers) == (7, 2, 6)
    assert total.error_rate == pytest.approx(2 / 7)
    assert total.escalation_rate == pytest.approx(1 / 6)
    assert total.p50_ms == 2500
    assert total.p95_ms == pytest.approx(7750)
    assert total.cost_usd == pytest.approx(0.006)
    assert (total.feedback_up, total.feedback_down) == (1, 1)
    audrey = today["audrey"]
    assert (audrey.turns, audrey.errors, audrey.answers) == (3, 0, 3)
    assert audrey.share == pytest.approx(0.5)
    assert audrey.p50_ms == 2000
    assert audrey.p95_ms == pytest.approx(8300)
    assert audrey.ttft_p50_ms == 300
    assert (audrey.feedback_up, audrey.feedback_down) == (1, 1)
    carole = today["carole"]
    assert (carole.turns, carole.errors, carole.error_rate) == (2, 1, 0.5)
    assert carole.share == pytest.approx(2 / 6)
    assert today["escalate"].share == pytest.approx(1 / 6)
    assert (today["none"].turns, today["none"].errors, today["none"].share) == (1, 1, None)
    old = {s.agent: s for s in stats if s.day == days[0]}
    assert (old[None].turns, old["carole"].answers) == (1, 1)


async def test_kpis_against_the_guide(url: str) -> None:
    pool = await open_pool(url, 2)
    try:
        kpis = {k.key: k for k in evaluate(await kpi_counts(pool))}
    finally:
        await pool.close()
    assert kpis["response_time_p95"].value == pytest.approx(7.75)
    assert kpis["response_time_p95"].threshold == RESPONSE_SECONDS
    assert kpis["response_time_p95"].ok is False
    assert kpis["error_rate"].value == pytest.approx(2 / 7)
    assert kpis["error_rate"].threshold == ERROR_RATE
    assert kpis["error_rate"].ok is False
    assert kpis["audrey_share"].value == pytest.approx(0.5)
    assert kpis["audrey_share"].ok is True
    assert kpis["carole_share"].value == pytest.approx(2 / 6)
    assert kpis["carole_share"].ok is False
    assert kpis["escalation_rate"].value == pytest.approx(1 / 6)
    assert kpis["escalation_rate"].threshold == ESCALATION_RATE
    assert kpis["escalation_rate"].sample_size == 6


async def test_hand_off_rows_leave_the_guides_queries_alone(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(read_query("monitoring_1_volume_by_version").encode())
        volume = {row[0]: (row[1], row[2]) for row in await cur.fetchall()}
        cur = await conn.execute(read_query("monitoring_3_agent_distribution").encode())
        distribution = {row[0]: row[1] for row in await cur.fetchall()}
    assert volume == {"v1": (1, 1), "v2": (6, 6)}
    assert distribution == {"audrey": 3, "carole": 2, "escalate": 1}


async def test_analytics_route_has_the_seed_queries_kpis_and_series(
    client: httpx.AsyncClient,
) -> None:
    body: dict[str, Any] = (await client.get("/api/analytics", params={"days": 3})).json()
    assert {"volume_by_version", "performance_v2", "agent_distribution", "kpis", "daily"} <= set(
        body
    )
    assert [k["key"] for k in body["kpis"]] == [
        "response_time_p95",
        "error_rate",
        "audrey_share",
        "carole_share",
        "escalation_rate",
    ]
    assert all(row["agent"] is None or row["turns"] >= 0 for row in body["daily"])
    assert (await client.get("/api/analytics", params={"days": 0})).status_code == 422
