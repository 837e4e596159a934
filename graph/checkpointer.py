"""LangGraph's Postgres checkpointer on the application's own pool."""

from __future__ import annotations

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from graph.state import STATE_MODELS
from store.postgres import Pool


def make_serializer() -> JsonPlusSerializer:
    """msgpack with an explicit allow-list: our state's models load, nothing else does."""
    return JsonPlusSerializer(allowed_msgpack_modules=list(STATE_MODELS))


async def make_checkpointer(pool: Pool) -> AsyncPostgresSaver:
    """Checkpoints live beside the messages, keyed by thread_id = conversation_id."""
    saver = AsyncPostgresSaver(pool, serde=make_serializer())
    await saver.setup()
    return saver
