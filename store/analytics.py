"""What an operator reads: the seed's monitoring queries and the list of conversations."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from core.kpis import KpiCounts
from core.settings import ROOT
from store.postgres import Pool

QUERIES_DIR = ROOT / "database" / "queries"

# The migration guide's step-6 queries, kept verbatim in database/queries/.
MONITORING_QUERIES = (
    ("volume_by_version", "monitoring_1_volume_by_version"),
    ("performance_v2", "monitoring_2_performance_v2"),
    ("agent_distribution", "monitoring_3_agent_distribution"),
)


def read_query(name: str) -> str:
    """SQL kept in `database/queries/` (the seed's monitoring queries, verbatim)."""
    return (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else value


async def monitoring(pool: Pool) -> dict[str, list[dict[str, Any]]]:
    """The three monitoring queries (last 24 hours), run as written in the guide."""
    result: dict[str, list[dict[str, Any]]] = {}
    async with pool.admit() as conn:
        for key, name in MONITORING_QUERIES:
            cur = await conn.execute(read_query(name).encode())
            result[key] = [{k: _plain(v) for k, v in row.items()} for row in await cur.fetchall()]
    return result


class ConversationSummary(BaseModel):
    id: str
    user_id: str | None
    updated_at: str
    messages: int


async def recent_conversations(pool: Pool, limit: int) -> list[ConversationSummary]:
    """The most recently active conversations, with their message counts."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select c.id, c.user_id, c.updated_at::text as updated_at, count(m.id) as messages "
            "from conversations c left join messages m on m.conversation_id = c.id "
            "group by c.id order by c.updated_at desc limit %s",
            (limit,),
        )
        rows = await cur.fetchall()
    return [ConversationSummary.model_validate(row) for row in rows]


# Per agent and per day, and the KPI window --------------------------------------------------
# A turn is a v2 user message that reached an outcome (answered or failed); messages held for
# the team during a hand-off are not turns. Its agent is the router's decision ('none' when it
# failed before routing). Latency, cost and feedback are read from the answers.

_TURNS = """
  select (u.created_at at time zone 'UTC')::date as day, coalesce(u.agent, 'none') as agent,
         u.status = 'failed' as failed
  from messages u
  where u.role = 'user' and u.status in ('answered', 'failed')
    and not (u.metadata ? 'handoff_id') and u.created_at >= %(since)s
"""
_ANSWERS = """
  select (a.created_at at time zone 'UTC')::date as day, a.agent, a.latency_ms,
         (a.metadata->>'first_token_ms')::double precision as first_token_ms,
         coalesce((a.metadata->'usage'->>'cost_usd')::double precision, 0) as cost_usd,
         f.rating
  from messages a left join feedback f on f.message_id = a.id
  where a.role = 'assistant' and a.agent is not null and a.created_at >= %(since)s
"""
DAILY_SQL = f"""
with turns as ({_TURNS}),
answers as ({_ANSWERS}),
turn_stats as (
  select day, agent, grouping(agent) = 1 as total, count(*) as turns,
         count(*) filter (where failed) as errors,
         count(*) filter (where agent <> 'none') as routed,
         count(*) filter (where agent = 'escalate') as escalations
  from turns group by grouping sets ((day, agent), (day))
),
answer_stats as (
  select day, agent, grouping(agent) = 1 as total, count(*) as answers,
         percentile_cont(0.5) within group (order by latency_ms) as p50_ms,
         percentile_cont(0.95) within group (order by latency_ms) as p95_ms,
         percentile_cont(0.5) within group (order by first_token_ms) as ttft_p50_ms,
         sum(cost_usd) as cost_usd,
         count(*) filter (where rating = 'up') as feedback_up,
         count(*) filter (where rating = 'down') as feedback_down
  from answers group by grouping sets ((day, agent), (day))
)
select coalesce(t.day, a.day) as day,
       case when coalesce(t.total, a.total) then null else coalesce(t.agent, a.agent) end
         as agent,
       coalesce(t.turns, 0) as turns, coalesce(t.errors, 0) as errors,
       coalesce(t.routed, 0) as routed, coalesce(t.escalations, 0) as escalations,
       coalesce(a.answers, 0) as answers, a.p50_ms, a.p95_ms, a.ttft_p50_ms,
       coalesce(a.cost_usd, 0) as cost_usd,
       coalesce(a.feedback_up, 0) as feedback_up, coalesce(a.feedback_down, 0) as feedback_down
from turn_stats t
full outer join answer_stats a
  on a.day = t.day and a.total = t.total and a.agent is not distinct from t.agent
order by 1, 2 nulls first
"""
KPI_SQL = f"""
with turns as ({_TURNS}),
answers as ({_ANSWERS})
select (select count(*) from turns) as turns,
       (select count(*) from turns where failed) as errors,
       (select count(*) from turns where agent = 'audrey') as audrey,
       (select count(*) from turns where agent = 'carole') as carole,
       (select count(*) from turns where agent = 'escalate') as escalate,
       (select count(*) from answers where latency_ms is not null) as answers,
       (select percentile_cont(0.95) within group (order by latency_ms) from answers) as p95_ms
"""


class DailyStats(BaseModel):
    """One day, for one agent (`agent` None: the day's totals, every agent together)."""

    day: date
    agent: str | None
    turns: int
    errors: int
    error_rate: float | None
    share: float | None = Field(description="Of the day's routed turns (escalate: escalation rate)")
    escalation_rate: float | None
    answers: int
    p50_ms: float | None
    p95_ms: float | None
    ttft_p50_ms: float | None
    cost_usd: float
    feedback_up: int
    feedback_down: int


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def daily_stats(pool: Pool, days: int) -> list[DailyStats]:
    """Per day (UTC) and per agent, with each day's totals first, over the last `days` days."""
    first_day = datetime.now(UTC).date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    async with pool.connection() as conn:
        cur = await conn.execute(DAILY_SQL.encode(), {"since": since})
        rows = await cur.fetchall()
    routed_by_day = {row["day"]: int(row["routed"]) for row in rows if row["agent"] is None}
    stats: list[DailyStats] = []
    for row in rows:
        routed = routed_by_day.get(row["day"], 0)
        agent = row["agent"]
        stats.append(
            DailyStats(
                day=row["day"],
                agent=agent,
                turns=row["turns"],
                errors=row["errors"],
                error_rate=_rate(row["errors"], row["turns"]),
                share=None if agent in (None, "none") else _rate(row["turns"], routed),
                escalation_rate=_rate(row["escalations"], row["routed"]),
                answers=row["answers"],
                p50_ms=row["p50_ms"],
                p95_ms=row["p95_ms"],
                ttft_p50_ms=row["ttft_p50_ms"],
                cost_usd=float(row["cost_usd"]),
                feedback_up=row["feedback_up"],
                feedback_down=row["feedback_down"],
            )
        )
    return stats


async def kpi_counts(pool: Pool, hours: int = 24) -> KpiCounts:
    """What the guide's KPIs are computed from, over the last `hours` hours."""
    async with pool.connection() as conn:
        since = datetime.now(UTC) - timedelta(hours=hours)
        cur = await conn.execute(KPI_SQL.encode(), {"since": since})
        row = await cur.fetchone()
    return KpiCounts.model_validate(row or {})
