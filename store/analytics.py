"""What an operator reads: the seed's monitoring queries and the list of conversations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel

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
