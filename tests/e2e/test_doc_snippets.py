"""Every shell command in README.md, docs/*.md and docker/README.md runs as written.

Each command of every ``sh`` block is matched against :data:`RULES`, in order:

* ``run`` commands are executed against a throwaway stack (Redis, Daphne and
  a bridge): ``redis-cli`` gets the throwaway Redis's port, everything else
  runs as written, from the repository root, with the virtualenv first on
  ``PATH``; commands that publish must reach a logged-in WebSocket client;
* ``skip`` commands cannot run here (long-running, interactive, Docker,
  systemd) and say why; what they refer to (Makefile targets, files,
  management commands) is checked to exist.

A command no rule matches fails the test: a new snippet must be made
runnable here or skipped with a reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import ROOT, run_manage
from tests.conftest import CHANNEL

pytestmark = pytest.mark.e2e

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "docker/README.md"]
FENCE = re.compile(r"^```(?:sh|bash|shell)\n(.*?)^```", re.MULTILINE | re.DOTALL)
MANAGE_COMMAND = re.compile(r"manage\.py (\w+)")
REDIS_CLI = re.compile(r"""(redis-cli|f\("redis-cli"\)\)'\)")\s""")


def strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` that is outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def commands() -> list[tuple[str, str]]:
    """(document, command) for every command of every shell block."""
    found = []
    for document in DOCUMENTS:
        for block in FENCE.findall(document.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                command = re.sub(r"\s+", " ", strip_comment(line)).strip()
                if command:
                    found.append((str(document.relative_to(ROOT)), command))
    return found


def makefile_has(target: str) -> None:
    text = (ROOT / "Makefile").read_text()
    assert re.search(rf"^{re.escape(target)}:", text, re.M), f"no Makefile target {target!r}"


def manage_has(command: str) -> None:
    name = MANAGE_COMMAND.search(command)
    assert name, command
    result = run_manage(
        {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}, "help", name.group(1)
    )
    assert result.returncode == 0, f"manage.py has no command {name.group(1)!r}: {result.stderr}"


def files_exist(*paths: str) -> Callable[[str], None]:
    def check(command: str) -> None:
        for path in paths:
            assert (ROOT / path).exists(), f"{command!r} refers to missing {path}"

    return check


def wheel_is_this_version(command: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wheel = f"botrix_jobupdates-{project['version']}-py3-none-any.whl"
    assert command.endswith(f"/{wheel}"), f"{command!r}: expected this version's wheel, {wheel}"


def benchmark_args_parse(command: str) -> None:
    from benchmarks.cli import parse_args

    parse_args(shlex.split(command)[3:])  # exits (SystemExit) on an unknown option


def nothing(command: str) -> None:
    return None


@dataclass(frozen=True)
class Rule:
    pattern: str
    action: str  # "run", "publish" (run, then a client must receive an update) or "skip"
    reason: str = ""
    check: Callable[[str], None] = nothing


RULES = [
    Rule(
        r"^make (run|test|bench|chaos)\b",
        "skip",
        "long-running (a 60 s make chaos runs in tests/e2e/test_chaos.py)",
        lambda c: makefile_has(c.split()[1]),
    ),
    Rule(
        r"^\.venv/bin/python -m benchmarks --targets ", "skip", "long-running", benchmark_args_parse
    ),
    Rule(
        r"^docker compose -f docker/compose\.yaml ",
        "skip",
        "no Docker engine here; docker/ is checked by tests/e2e/test_nginx.py and "
        "tests/e2e/test_compose_sentinel.py",
        files_exist("docker/compose.yaml", "docker/compose.sentinel.yaml"),
    ),
    Rule(
        r"^(daphne|python -m jobupdates\.delivery\.drain_server) ",
        "skip",
        "long-running; started as written by tests/e2e/test_walkthrough.py",
    ),
    Rule(r"manage\.py run_bridge$", "skip", "long-running; started by the stack", manage_has),
    Rule(r"manage\.py createsuperuser$", "skip", "interactive", manage_has),
    Rule(r"manage\.py publish_job_update --interactive$", "skip", "interactive", manage_has),
    Rule(r"manage\.py collectstatic\b", "skip", "writes STATIC_ROOT in the checkout", manage_has),
    Rule(
        r"^pip install /path/to/botrix_jobupdates-[^-]+-py3-none-any\.whl$",
        "skip",
        "installed into a fresh virtualenv by tests/e2e/test_walkthrough.py",
        wheel_is_this_version,
    ),
    Rule(r"^django-admin startproject mysite$", "skip", "run by tests/e2e/test_walkthrough.py"),
    Rule(r"^cd mysite$", "skip", "run by tests/e2e/test_walkthrough.py"),
    Rule(r"^systemctl ", "skip", "needs systemd"),
    Rule(
        r"^promtool (check|test) rules docker/prometheus/alerts(_test)?\.yml$",
        "skip",
        "run by tests/monitoring/test_alerts.py (needs Debian's prometheus package)",
        files_exist("docker/prometheus/alerts.yml", "docker/prometheus/alerts_test.yml"),
    ),
    Rule(
        r"^BOTRIX_SCREENSHOT_DIR=docs \.venv/bin/python -m pytest tests/browser ",
        "skip",
        "the browser tests themselves (rewrite docs/*.png)",
        files_exist("tests/browser"),
    ),
    Rule(r"publish_job_update|PUBLISH", "publish"),
    Rule(r"^python manage\.py (check|migrate)$", "run"),
    Rule(r"^redis-cli (PUBSUB NUMSUB|GET|LRANGE) ", "run"),
    Rule(r"^export DJANGO_SECRET_KEY=|^python3 -c 'import secrets", "run"),
    Rule(r"--help$", "run"),
    Rule(r"^\.venv/bin/python -m benchmarks\.pool ", "run"),  # reads committed results
]


def rule_for(command: str) -> Rule | None:
    return next((rule for rule in RULES if re.search(rule.pattern, command)), None)


def test_every_command_in_the_docs_has_a_rule():
    unmatched = [(doc, command) for doc, command in commands() if rule_for(command) is None]
    assert not unmatched, (
        "these documented commands are neither run nor skipped with a reason; add a rule "
        f"to RULES in {Path(__file__).name}:\n" + "\n".join(f"  {d}: {c}" for d, c in unmatched)
    )


def test_what_skipped_commands_refer_to_exists():
    for _doc, command in commands():
        rule = rule_for(command)
        if rule is not None and rule.action == "skip":
            assert rule.reason
            rule.check(command)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_runnable_commands_run_as_written(stack, staff_cookie, tmp_path):
    env = dict(stack.env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    to_run = [(d, c, rule_for(c)) for d, c in commands()]
    to_run = [(d, c, r.action) for d, c, r in to_run if r is not None and r.action != "skip"]
    assert any(action == "publish" for _d, _c, action in to_run), "expected a publish snippet"

    def run(command: str, extra: dict[str, str]) -> str:
        command = REDIS_CLI.sub(lambda m: f"{m.group(1)} -p {stack.redis.port} ", command)
        result = subprocess.run(  # noqa: S602 - the docs' commands are shell commands
            command,
            shell=True,
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"`{command}` failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
        return result.stdout + result.stderr

    ran = []
    publisher = redis.Redis.from_url(stack.redis.url)
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        for document, command, action in to_run:
            extra = {}
            if "migrate" in command:  # a database of its own, not the stack's
                extra["DATABASE_URL"] = f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
            output = await asyncio.to_thread(run, command, extra)
            if action == "publish":
                frame = await recv_json(ws, timeout=10)
                assert frame["type"] == "job_update", (document, command, frame)
                # A burst publishes several: read them up to a marker published after it.
                marker = f"after-snippet-{len(ran)}"
                publisher.publish(CHANNEL, json.dumps({"job_id": marker, "status": "queued"}))
                while frame.get("job_id") != marker:
                    frame = await recv_json(ws, timeout=10)
            if command == "python manage.py check":
                assert "System check identified no issues" in output, output
            if command.startswith("redis-cli PUBSUB NUMSUB"):
                assert output.split()[-1] == "1", output  # the stack's one bridge
            if "-m benchmarks.pool " in command:
                assert "| registry's share of server CPU samples % |" in output, output
            if command.startswith("redis-cli GET botrix:jobs:bridge:active"):
                assert output.strip(), "expected the active bridge's name"
            ran.append(f"{document}: {command}")
    publisher.close()
    assert ran
