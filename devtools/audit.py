"""The consistency audit that ends the fault soak: does the database keep every promise?

- every user message has one final status (none left `received` or `running`, no draft left);
- an `answered` message has its answer, and every answer belongs to one accepted message;
- for every conversation, the checkpointed history and the messages table agree: the same
  messages (id, role, text), in the same order. A `failed` question may be absent from the
  checkpoint (it failed before the graph took it), and so is one kept for the team while a
  person had the conversation (`held`: acknowledged, never routed); a `rejected` one must be
  absent.
Each broken promise is listed with the conversation and message it concerns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from graph.builder import ChatGraph
from store import audit as queries
from store.postgres import Pool


class Violation(BaseModel):
    kind: str
    conversation_id: str | None = None
    message_id: str | None = None
    detail: str = ""


class AuditReport(BaseModel):
    conversations: int
    user_messages: dict[str, int]
    violations: list[Violation] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        """Violations per kind."""
        found: dict[str, int] = {}
        for violation in self.violations:
            found[violation.kind] = found.get(violation.kind, 0) + 1
        return found


def _role(message: BaseMessage) -> str:
    return "user" if isinstance(message, HumanMessage) else "assistant"


def compare_history(
    conversation_id: str, table: Sequence[dict[str, Any]], checkpoint: Sequence[BaseMessage]
) -> list[Violation]:
    """Checkpoint vs table for one conversation (pure, so it is tested on its own)."""
    violations: list[Violation] = []
    rows = [r for r in table if r["role"] in ("user", "assistant") and r["status"] != "rejected"]
    by_id = {str(r["id"]): r for r in rows}
    for message in checkpoint:
        if not isinstance(message, HumanMessage | AIMessage):
            continue
        row = by_id.get(str(message.id))
        if row is None:
            violations.append(
                Violation(
                    kind="checkpoint_message_not_in_table",
                    conversation_id=conversation_id,
                    message_id=str(message.id),
                )
            )
        elif row["role"] != _role(message) or row["content"] != message.text:
            violations.append(
                Violation(
                    kind="checkpoint_message_differs",
                    conversation_id=conversation_id,
                    message_id=str(message.id),
                )
            )
    in_checkpoint = [str(m.id) for m in checkpoint if str(m.id) in by_id]
    required = [
        str(r["id"])
        for r in rows
        if not (r["role"] == "user" and (r["status"] == "failed" or r.get("held")))
    ]
    missing = [m for m in required if m not in set(in_checkpoint)]
    for message_id in missing:
        violations.append(
            Violation(
                kind="table_message_not_in_checkpoint",
                conversation_id=conversation_id,
                message_id=message_id,
            )
        )
    table_order = [str(r["id"]) for r in rows if str(r["id"]) in set(in_checkpoint)]
    if table_order != in_checkpoint:
        violations.append(
            Violation(
                kind="order_differs",
                conversation_id=conversation_id,
                detail=f"table {table_order} checkpoint {in_checkpoint}",
            )
        )
    return violations


async def audit(
    pool: Pool, graph: ChatGraph, conversations: list[str] | None = None
) -> AuditReport:
    """Run every check over the database (or over the given conversations' histories)."""
    ids = conversations if conversations is not None else await queries.conversation_ids(pool)
    report = AuditReport(conversations=len(ids), user_messages=await queries.status_counts(pool))
    for row in await queries.stuck_turns(pool):
        report.violations.append(
            Violation(
                kind="stuck",
                conversation_id=row["conversation_id"],
                message_id=str(row["id"]),
                detail=str(row["status"]),
            )
        )
    for row in await queries.orphan_answers(pool):
        report.violations.append(
            Violation(
                kind="answer_without_question",
                conversation_id=row["conversation_id"],
                message_id=str(row["id"]),
            )
        )
    for row in await queries.answered_without_answer(pool):
        report.violations.append(
            Violation(
                kind="answered_without_answer",
                conversation_id=row["conversation_id"],
                message_id=str(row["id"]),
            )
        )
    for conversation_id in ids:
        config: RunnableConfig = {"configurable": {"thread_id": conversation_id}}
        state = await graph.aget_state(config)
        checkpoint = list(state.values.get("messages", [])) if state.values else []
        table = await queries.ordered_messages(pool, conversation_id)
        report.violations.extend(compare_history(conversation_id, table, checkpoint))
    return report
