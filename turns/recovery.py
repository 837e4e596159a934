"""Turns whose worker died: finish them, once, from any worker.

A worker killed with `kill -9` leaves its user messages `received` or `running`, their drafts
behind, and its conversation's checkpoint ending on a question. When their lease expires, the
sweep makes each user message `failed`, keeps what was streamed as an `interrupted` answer, and
appends that partial answer to the checkpoint, so the table and the history agree and the next
message of the conversation is served normally. It runs at start-up and then every lease
period in every worker (`skip locked`: each orphan is finished by one of them).

A worker can also die (or lose the database) after the graph checkpointed the whole answer but
before the turn was saved: then the checkpoint is right and the draft is stale, and the turn is
finished as answered with the checkpoint's answer.
"""

from __future__ import annotations

import asyncio
import logging

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from graph.builder import ChatGraph
from store import turn_queue
from store.postgres import Pool
from store.turn_queue import FinishedAnswer, Orphan
from turns.runner import append_interrupted_answer

log = logging.getLogger(__name__)


async def sweep_orphans(pool: Pool, graph: ChatGraph) -> int:
    """Finish every turn whose lease expired; returns how many."""

    async def answer_in_checkpoint(orphan: Orphan) -> FinishedAnswer | None:
        # Anywhere in the history, not only last: once this turn's lease expired, the
        # conversation's next message may have started (and died) after it.
        if orphan.reply_id is None:
            return None
        config: RunnableConfig = {"configurable": {"thread_id": orphan.conversation_id}}
        state = await graph.aget_state(config)
        for message in state.values.get("messages", []) if state.values else []:
            if (
                isinstance(message, AIMessage)
                and message.id == str(orphan.reply_id)
                and not message.response_metadata.get("interrupted")
            ):
                return FinishedAnswer(message.text, message.name, dict(message.response_metadata))
        return None

    async def repair(orphan: Orphan) -> None:
        if not (orphan.content and orphan.reply_id is not None and orphan.agent):
            return
        try:
            await append_interrupted_answer(
                graph,
                conversation_id=orphan.conversation_id,
                user_message_id=str(orphan.user_message_id),
                reply_id=str(orphan.reply_id),
                agent=orphan.agent,
                content=orphan.content,
                question=orphan.question,
            )
        except Exception:
            log.exception("could not repair the checkpoint of %s", orphan.conversation_id)

    finished = 0
    while orphans := await turn_queue.claim_orphans(
        pool, finished=answer_in_checkpoint, repair=repair
    ):
        finished += len(orphans)
        log.warning("finished %d orphaned turn(s) as failed", len(orphans))
    return finished


async def keep_sweeping(pool: Pool, graph: ChatGraph, period: float) -> None:
    """Sweep every `period` seconds until cancelled (a database outage only delays it)."""
    while True:
        try:
            await sweep_orphans(pool, graph)
        except Exception:
            log.warning("orphan sweep failed; will retry", exc_info=True)
        await asyncio.sleep(period)
