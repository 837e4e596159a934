"""What the graph did for a conversation, and re-running it from any checkpoint (LangGraph time
travel) on a fork, so the conversation itself is never touched."""

from __future__ import annotations

import dataclasses
from typing import Any
from uuid import UUID, uuid4

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel

from core.domain import RouteDecision
from graph.context import Context
from graph.state import AnswerMeta, RerankInfo, turn_input
from providers.generator import make_generator
from services import Services
from store.runs import RunRow, list_runs
from turns.stream import Token, TracedRun


class CheckpointNotFound(LookupError):
    """No such checkpoint in this conversation."""


class ReplayRefused(ValueError):
    """The checkpoint cannot be replayed as asked."""


class CheckpointLine(BaseModel):
    """One checkpoint of the conversation, with the node runs that produced it."""

    checkpoint_id: str
    parent_checkpoint_id: str | None
    step: int
    source: str
    created_at: str
    next: list[str]
    run_id: str | None
    messages: int
    question: str | None = None
    nodes: list[RunRow]


class ReplayResult(BaseModel):
    """A replay's outcome beside the original."""

    conversation_id: str
    fork_thread_id: str
    checkpoint_id: str
    message: str
    agent: str | None
    route_reason: str | None
    model: str | None
    old_answer: str | None
    new_answer: str
    runs: list[RunRow]


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def checkpoints(services: Services, conversation_id: str) -> list[CheckpointLine]:
    """The conversation's checkpoints, oldest first, each with its node runs."""
    runs = await list_runs(services.pool, conversation_id, kind="turn")
    by_checkpoint: dict[str, list[RunRow]] = {}
    for run in runs:
        if run.checkpoint_id:
            by_checkpoint.setdefault(run.checkpoint_id, []).append(run)
    lines: list[CheckpointLine] = []
    async for snapshot in services.graph.aget_state_history(_config(conversation_id)):
        checkpoint_id = str(snapshot.config["configurable"]["checkpoint_id"])
        parent = (
            snapshot.parent_config["configurable"]["checkpoint_id"]
            if snapshot.parent_config
            else None
        )
        metadata = snapshot.metadata or {}
        messages = snapshot.values.get("messages", [])
        asked = [m for m in messages if isinstance(m, HumanMessage)]
        lines.append(
            CheckpointLine(
                checkpoint_id=checkpoint_id,
                parent_checkpoint_id=str(parent) if parent else None,
                step=int(metadata.get("step", -1)),
                source=str(metadata.get("source", "")),
                created_at=str(snapshot.created_at),
                next=list(snapshot.next),
                run_id=metadata.get("message_id"),
                messages=len(messages),
                question=asked[-1].text if asked else None,
                nodes=by_checkpoint.get(checkpoint_id, []),
            )
        )
    lines.reverse()
    return lines


def _readable(message: AnyMessage) -> dict[str, Any]:
    return {
        "role": "user" if isinstance(message, HumanMessage) else "assistant",
        "agent": message.name,
        "id": message.id,
        "content": message.text,
    }


async def state_at(
    services: Services, conversation_id: str, checkpoint_id: str | None = None
) -> dict[str, Any]:
    """The state at a checkpoint (the latest by default), as plain data."""
    snapshot = await services.graph.aget_state(_config(conversation_id, checkpoint_id))
    if not snapshot.values and checkpoint_id is not None and snapshot.created_at is None:
        raise CheckpointNotFound(checkpoint_id)
    values = snapshot.values
    route = values.get("route")
    rerank_info = values.get("rerank_info")
    answer_meta = values.get("answer_meta")
    return {
        "checkpoint_id": snapshot.config["configurable"].get("checkpoint_id"),
        "step": (snapshot.metadata or {}).get("step"),
        "created_at": snapshot.created_at,
        "next": list(snapshot.next),
        "messages": [_readable(m) for m in values.get("messages", [])],
        "route": route.model_dump() if isinstance(route, RouteDecision) else None,
        "query": values.get("query", ""),
        "candidates": {
            k: [p.model_dump(exclude={"content"}) for p in v]
            for k, v in values.get("candidates", {}).items()
        },
        "passages": [p.model_dump() for p in values.get("passages", [])],
        "rerank_info": rerank_info.model_dump() if isinstance(rerank_info, RerankInfo) else None,
        "answer_meta": (
            answer_meta.model_dump(mode="json") if isinstance(answer_meta, AnswerMeta) else None
        ),
        "pending": [task.name for task in snapshot.tasks],
    }


def _context_for(services: Services, model: str | None) -> Context:
    if model is None:
        return services.context
    name = model if model.startswith(("extractive/", "openrouter/")) else f"openrouter/{model}"
    generator = make_generator(name, services.providers.embeddings, services.settings)
    providers = dataclasses.replace(services.providers, generator=generator)
    return dataclasses.replace(services.context, providers=providers)


async def replay(
    services: Services,
    conversation_id: str,
    checkpoint_id: str,
    message: str | None = None,
    model: str | None = None,
) -> ReplayResult:
    """Re-run a turn from `checkpoint_id` on a fork thread and compare with the original.

    The fork starts from the conversation as it stood at that checkpoint: a checkpoint inside
    a turn replays that turn (with `message` instead of its question, if given); a checkpoint
    at the end of a turn asks `message` next. The original thread, its checkpoints and the
    messages table are left as they were.
    """
    target = await services.graph.aget_state(_config(conversation_id, checkpoint_id))
    if target.created_at is None:
        raise CheckpointNotFound(checkpoint_id)
    messages: list[AnyMessage] = list(target.values.get("messages", []))
    pending_question: str | None = None
    if target.next:  # inside a turn: its question is the last human message, or still pending
        if messages and isinstance(messages[-1], HumanMessage):
            pending_question = messages.pop().text
        else:
            pending_question = await _pending_question(services, conversation_id, checkpoint_id)
    question = message or pending_question
    if not question:
        raise ReplayRefused(
            "this checkpoint ends a turn: give --message to ask something new from there"
        )
    current = await services.graph.aget_state(_config(conversation_id))
    originals: list[AnyMessage] = list(current.values.get("messages", []))
    old = originals[len(messages) + 1] if len(originals) > len(messages) + 1 else None
    old_answer = old.text if isinstance(old, AIMessage) else None

    fork = f"{conversation_id}:replay:{uuid4().hex[:8]}"
    run_id: UUID = uuid4()
    tokens: list[str] = []
    graph_input = turn_input(question, message_id=str(uuid4()), reply_id=str(run_id))
    graph_input["messages"] = [*messages, *graph_input["messages"]]
    config = _config(fork)
    config["metadata"] = {"replay_of": conversation_id, "checkpoint_id": checkpoint_id}
    run = TracedRun(services.graph, graph_input, config, _context_for(services, model))
    failure: BaseException | None = None
    try:
        async for signal in run.signals():
            if isinstance(signal, Token):
                tokens.append(signal.text)
    except Exception as exc:
        failure = exc
    await run.save(
        services.pool,
        conversation_id=conversation_id,
        thread_id=fork,
        run_id=run_id,
        kind="replay",
        parent_checkpoint_id=checkpoint_id,
        error=failure,
    )
    if failure is not None:
        raise failure
    state = (await services.graph.aget_state(_config(fork))).values
    route = state.get("route")
    answer_meta = state.get("answer_meta")
    return ReplayResult(
        conversation_id=conversation_id,
        fork_thread_id=fork,
        checkpoint_id=checkpoint_id,
        message=question,
        agent=route.route if isinstance(route, RouteDecision) else None,
        route_reason=route.reason if isinstance(route, RouteDecision) else None,
        model=answer_meta.model if isinstance(answer_meta, AnswerMeta) else None,
        old_answer=old_answer,
        new_answer="".join(tokens),
        runs=[
            r
            for r in await list_runs(services.pool, conversation_id, kind="replay")
            if r.run_id == run_id
        ],
    )


async def _pending_question(
    services: Services, conversation_id: str, checkpoint_id: str
) -> str | None:
    """The question of a turn whose input is not applied yet (its `input` checkpoint holds it
    as a pending write of `__start__`)."""
    saver = services.graph.checkpointer
    if saver is None or isinstance(saver, bool):
        return None
    saved = await saver.aget_tuple(_config(conversation_id, checkpoint_id))
    for _, channel, value in (saved.pending_writes or []) if saved else []:
        payload = value.get("messages") if isinstance(value, dict) else value
        if channel not in ("__start__", "messages"):
            continue
        for item in payload if isinstance(payload, list) else [payload]:
            if isinstance(item, HumanMessage):
                return item.text
    return None


def format_runs(lines: list[CheckpointLine]) -> str:
    """`chatbot runs list`: a header per turn, then one line per node run or bare checkpoint."""
    out: list[str] = []
    header = (
        f"{'time':<12} {'step':>4}  {'node':<10} {'agent':<8} {'latency':>9}  {'status':<9} "
        "checkpoint"
    )
    current_run: str | None = None
    turn = 0
    for line in lines:
        if line.run_id != current_run:
            current_run = line.run_id
            turn += 1
            nodes = [n for later in lines if later.run_id == current_run for n in later.nodes]
            question = next(
                (
                    later.question
                    for later in reversed(lines)
                    if later.run_id == current_run and later.question
                ),
                "",
            )
            agent = next((n.detail.get("route") for n in nodes if n.node == "route"), "?")
            total = sum(n.duration_ms or 0 for n in nodes if n.node not in ("route", "retrieve"))
            total += max(
                (n.duration_ms or 0 for n in nodes if n.node in ("route", "retrieve")), default=0
            )
            title = f"turn {turn} · run {str(current_run)[:8]} · {question!r} -> {agent}"
            out.append(f"\n{title} · {total:.0f} ms")
            out.append(header)
        if not line.nodes:
            label = "(input)" if line.source == "input" else "(start)"
            out.append(
                f"{line.created_at[11:23]:<12} {line.step:>4}  {label:<10} {'-':<8} {'-':>9}  "
                f"{'-':<9} {line.checkpoint_id}"
            )
        for node in line.nodes:
            agent = (
                node.detail.get("route") if node.node == "route" else node.detail.get("agent", "-")
            )
            latency = f"{node.duration_ms:.1f} ms" if node.duration_ms is not None else "-"
            out.append(
                f"{node.started_at.isoformat()[11:23]:<12} {line.step:>4}  {node.node:<10} "
                f"{agent or '-':<8} {latency:>9}  {node.status:<9} {line.checkpoint_id}"
            )
    return "\n".join(out).lstrip("\n")
