"""What can be checked of the image and the compose file without a Docker daemon (none runs
here): who the container runs as, where its data lives, its command and health check, and that
the guide's `docker compose up -d --build` then `curl http://localhost:8000/health` can work."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from typing import Any

import yaml

from core.settings import ROOT, Settings


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, rest = full.partition(" ")
        lines.append((keyword.upper(), rest.strip()))
    return lines


def last(keyword: str) -> tuple[int, str]:
    found = [(i, rest) for i, (k, rest) in enumerate(instructions()) if k == keyword]
    assert found, f"no {keyword} in the Dockerfile"
    return found[-1]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, rest in instructions():
        if keyword == "ENV":
            values.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return values


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_container_runs_as_an_unprivileged_user_created_in_the_image() -> None:
    user_at, user = last("USER")
    uid = user.split(":")[0]
    assert uid not in ("root", "0")
    assert user_at > last("RUN")[0], "USER comes after the last RUN, so it applies at run time"
    assert user_at < last("CMD")[0]
    created = " ".join(rest for k, rest in instructions() if k == "RUN")
    assert re.search(rf"useradd\b[^&]*--uid {uid}\b", created)


def test_the_data_directory_is_a_volume_owned_by_that_user() -> None:
    data_dir = env()["DATA_DIR"]
    volume_at, volume = last("VOLUME")
    assert data_dir in json.loads(volume)
    chowned = [
        i
        for i, (k, rest) in enumerate(instructions())
        if k == "RUN" and f"chown chatbot:chatbot {data_dir}" in rest
    ]
    assert chowned
    assert chowned[-1] < volume_at
    # Settings read DATA_DIR, so the embedded database lands in the volume.
    assert Settings(_env_file=None, data_dir=data_dir).data_dir.as_posix() == data_dir


def test_command_and_healthcheck_exist_and_point_at_the_app() -> None:
    command = json.loads(last("CMD")[1])
    assert command == ["/app/.venv/bin/chatbot", "serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["chatbot"] == "cli:run"
    health = last("HEALTHCHECK")[1]
    probe = json.loads(health[health.index("CMD") + 3 :].strip())
    assert probe[:2] == ["/app/.venv/bin/python", "-c"]
    ast.parse(probe[2])  # valid Python
    assert "/health" in probe[2]
    assert env()["HOST"] == "0.0.0.0"


def test_compose_matches_the_migration_guide() -> None:
    service = compose()["services"]["chatbot-v2"]
    assert service["container_name"] == "chatbot-v2"  # `docker logs chatbot-v2 -f`
    assert service["build"] == "."
    assert service["env_file"] == ".env"  # `cp .env.example .env`
    assert any(str(p).endswith(":8000:8000") or str(p) == "8000:8000" for p in service["ports"])
    # .env.example says HOST=127.0.0.1 (for `make run`); compose must override it, or the
    # server would listen on the container's loopback and the published port would be dead.
    example = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    assert example["HOST"] == "127.0.0.1"
    assert service["environment"]["HOST"] == "0.0.0.0"
    data_dir = env()["DATA_DIR"]
    assert service["environment"]["DATA_DIR"] == data_dir
    volume, _, target = service["volumes"][0].partition(":")
    assert target == data_dir
    assert volume in compose()["volumes"]


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".data", ".env", "**/node_modules"} <= set(ignored)
