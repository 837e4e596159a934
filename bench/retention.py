"""Checkpoint storage per turn as one conversation grows (retention, CHECKPOINT_KEEP_TURNS).

    make retention                                   # 200 turns, keep 3 and the setting
    .venv/bin/python -m bench.retention --turns 200 --keep 3 --keep 20

Runs one conversation of `--turns` turns per `--keep` value on the embedded default (DATA_DIR,
as `make run` uses it), through the same turn runner as the server, and measures the bytes its
checkpoints take (rows as stored: checkpoints, blobs and writes) after turns 10 and the last.
Each checkpoint's `messages` blob holds the whole history, so storage per turn stays flat only
while the number of turns kept is fixed; the ratio last/10 is the figure (goal: <= 1.2).
Writes bench/results/retention.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any
from uuid import uuid4

from core.settings import ROOT, get_settings
from services import open_services
from store import checkpoints
from turns.runner import TurnRequest

RESULTS = ROOT / "bench" / "results"
# Specialist questions only: an escalation would hand the conversation to a person, whose
# turns do not run the graph (issue 14), and the history would stop growing.
QUESTIONS = [
    "Comment relancer un devis par email avec Brevo ?",
    "Comment automatiser une relance de panier abandonné ?",
    "Aide-moi à écrire une accroche de reel Instagram",
    "Quelle fréquence de publication sur Instagram pour une boutique de bougies ?",
]


async def grow(turns: int, keep: int) -> dict[str, Any]:
    """One conversation of `turns` turns keeping `keep` turns of checkpoints."""
    settings = get_settings().model_copy(
        update={"checkpoint_keep_turns": keep, "rate_limit_per_minute": 0}
    )
    conversation = f"retention-{keep}-{uuid4().hex[:6]}"
    samples: dict[int, int] = {}
    started = time.perf_counter()
    async with open_services(settings) as services:
        for n in range(1, turns + 1):
            events = await services.turns.start(
                TurnRequest(
                    conversation_id=conversation,
                    user_id="retention-bench",
                    message=f"{QUESTIONS[n % len(QUESTIONS)]} ({n})",
                )
            )
            last = [event async for event in events][-1]
            if last.kind != "end":
                raise RuntimeError(f"turn {n} ended with {last.kind}")
            await services.turns.wait_idle()  # the turn prunes after its last event
            if n in (10, turns) or n % 50 == 0:
                samples[n] = await checkpoints.thread_bytes(services.pool, conversation)
        state = await services.graph.aget_state({"configurable": {"thread_id": conversation}})
        history = len(state.values["messages"])
    if history != 2 * turns:
        raise RuntimeError(f"the checkpointed history holds {history} messages, not {2 * turns}")
    per_turn = {n: round(total / n) for n, total in samples.items()}
    return {
        "keep_turns": keep,
        "turns": turns,
        "bytes": samples,
        "bytes_per_turn": per_turn,
        "ratio_last_to_10": round(per_turn[turns] / per_turn[10], 3),
        "history_messages": history,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--keep", type=int, action="append", help="turns kept (repeatable)")
    args = parser.parse_args()
    keeps = args.keep or sorted({3, get_settings().checkpoint_keep_turns})
    runs = [asyncio.run(grow(args.turns, keep)) for keep in keeps]
    report = {"date": time.strftime("%Y-%m-%d"), "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retention.json").write_text(json.dumps(report, indent=2) + "\n")
    for run in runs:
        print(
            f"keep {run['keep_turns']:>3} turns: bytes/turn at 10 = {run['bytes_per_turn'][10]}, "
            f"at {run['turns']} = {run['bytes_per_turn'][run['turns']]} "
            f"(x{run['ratio_last_to_10']}), history {run['history_messages']} messages"
        )


if __name__ == "__main__":
    main()
