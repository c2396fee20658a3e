"""A newcomer follows docs/integration.md into a fresh ``django-admin startproject`` site.

The newcomer has a fresh virtualenv (this interpreter's ``venv``, nothing
installed) and the package's wheel, built from this checkout by ``python -m
build``. The test walks the page's code blocks in order, as a reader would:

* ``sh`` blocks are run command by command (in a temporary directory, with
  the wheel's directory as ``/path/to/``), with the fresh virtualenv's
  ``python``, ``pip`` and ``django-admin`` first on ``PATH``; ``pip`` is held
  to the versions of this interpreter's environment (``PIP_CONSTRAINT``), so
  Django 5.2 or 6.1 as the suite runs; long-running commands (Daphne,
  ``run_bridge``) are started in the background and waited for by their log
  lines;
* ``python`` blocks whose first line is ``# mysite/<file> — add at the end``
  or ``# mysite/<file> — replace the file`` are applied to that file;
* then a staff user logs in through the new site's admin and receives both
  updates the page publishes, over a real WebSocket.

* then a staff user logs in, loads the console page and its static files, and
  receives the updates the page publishes, over a real WebSocket.

So if the page's settings, routing, URLs or commands are wrong, or the wheel
lacks a module, a template, a static file or a dependency, this fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import pytest

from botrix_site.redis_server import RedisServer, free_port
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import ROOT, Process

pytestmark = pytest.mark.e2e

INTEGRATION = ROOT / "docs" / "integration.md"
WHEELS = "/path/to/"
RUNTIME = ("Django", "channels", "channels-redis", "daphne", "autobahn", "Twisted", "redis")
RUNTIME += ("hiredis", "prometheus-client", "asgiref", "msgpack")
"""The runtime dependencies held to this environment's versions in the fresh virtualenv."""
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
EDIT = re.compile(r"^# (mysite/\S+) — (add at the end|replace the file)$")
STAFF = ("newcomer", "newcomer-password-1")


@dataclass
class Block:
    language: str
    text: str


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    return [Block(lang, text) for lang, text in FENCE.findall(path.read_text())]


def shell_commands(text: str) -> Iterator[str]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    for line in text.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line.strip()


@dataclass
class Walkthrough:
    """The newcomer's shell: a working directory, an environment, background processes."""

    cwd: Path
    env: dict[str, str]
    redis: RedisServer
    wheels: Path
    port: int = 0
    background: list[Process] = field(default_factory=list)
    daphne: Process | None = None
    bridge: Process | None = None
    edits: list[str] = field(default_factory=list)
    publishes: list[str] = field(default_factory=list)

    def run(self, command: str) -> str:
        result = subprocess.run(  # noqa: S602 - the page's commands are shell commands
            command, shell=True, cwd=self.cwd, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, (
            f"`{command}` failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
        return result.stdout + result.stderr

    def start(self, name: str, command: str) -> Process:
        argv = ["sh", "-c", f'cd "$1" && exec {command}', "sh", str(self.cwd)]
        process = Process(name, argv, self.env)
        self.background.append(process)
        return process

    def follow(self, command: str) -> None:
        """Do what the page says, as written (only the machine-specific parts swapped)."""
        command = command.replace(WHEELS, f"{self.wheels}/")
        if command.startswith("pip install "):
            wheel = Path(shlex.split(command)[-1])
            assert wheel.is_file(), f"expected the page to install the built wheel, {wheel}"
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            self.env[name] = value
            return
        if command.startswith("cd "):
            self.cwd = self.cwd / command.removeprefix("cd ").strip()
            assert self.cwd.is_dir(), f"expected {self.cwd} to exist"
            return
        if command == "python manage.py createsuperuser":  # interactive: answer up front
            self.env["DJANGO_SUPERUSER_PASSWORD"] = STAFF[1]
            command += f" --noinput --username {STAFF[0]} --email newcomer@example.com"
        if command.startswith(("daphne ", "python -m jobupdates.delivery.drain_server ")):
            assert "tcp:port=8000:" in command, command
            self.port = free_port()
            self.daphne = self.start("daphne", command.replace("port=8000", f"port={self.port}"))
            self.daphne.wait_for(rf"Listening on TCP address 127\.0\.0\.1:{self.port}")
            return
        if command == "python manage.py run_bridge":
            self.bridge = self.start("bridge", command)
            self.bridge.wait_for(r"bridge connecting -> subscribed")
            self.bridge.wait_for(r"is now the active bridge")
            return
        if "PUBLISH" in command or "publish_job_update" in command:
            self.publishes.append(command.replace("redis-cli ", f"redis-cli -p {self.redis.port} "))
            return  # published once a client is connected
        output = self.run(command)
        if command == "python manage.py check":
            assert "System check identified no issues" in output, output

    def apply(self, block: Block) -> None:
        first, _, body = block.text.partition("\n")
        found = EDIT.match(first)
        if found is None:
            return  # an example, not an edit of the site
        path = self.cwd / found.group(1)
        assert path.is_file(), f"expected {path} to exist"
        if found.group(2) == "replace the file":
            path.write_text(body)
        else:
            path.write_text(path.read_text() + "\n" + body)
        self.edits.append(f"{found.group(1)}: {found.group(2)}")


def fetch(port: int, path: str, cookie: str) -> str:
    """GET a page of the running site as the logged-in user; its body (200 only)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Cookie": cookie})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, (path, response.status)
        return str(response.read().decode())


def constraints(path: Path) -> Path:
    """A pip constraints file holding :data:`RUNTIME` to this environment's versions."""
    path.write_text("".join(f"{name}=={version(name)}\n" for name in RUNTIME))
    return path


def fresh_virtualenv(path: Path) -> Path:
    """A new virtualenv of this interpreter with nothing installed; its ``bin``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path / "bin"


@pytest.fixture
def walkthrough(tmp_path: Path, redis_server: RedisServer, dist: Path) -> Iterator[Walkthrough]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBUPDATES_", "DJANGO_"))}
    # the fresh virtualenv's commands, then the system's, and redis-cli wherever it is,
    # but nothing else of the suite's own virtualenv
    ours = str(Path(sys.executable).parent)
    system = [d for d in env.get("PATH", "").split(os.pathsep) if d and d != ours]
    tools = tmp_path / "tools"
    tools.mkdir()
    redis_cli = shutil.which("redis-cli", path=os.pathsep.join([*system, ours]))
    assert redis_cli is not None, "expected redis-cli on PATH or in the suite's virtualenv"
    (tools / "redis-cli").symlink_to(redis_cli)
    bin_dir = fresh_virtualenv(tmp_path / "venv")
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(tools), *system]),
        VIRTUAL_ENV=str(bin_dir.parent),
        PIP_CONSTRAINT=str(constraints(tmp_path / "constraints.txt")),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        REDIS_URL=redis_server.url,
        PYTHONUNBUFFERED="1",
    )
    env.pop("PYTHONPATH", None)
    site = tmp_path / "site"
    site.mkdir()
    shell = Walkthrough(site, env, redis_server, dist)
    yield shell
    for process in shell.background:
        process.stop()


async def test_a_newcomer_adds_the_app_to_a_fresh_site(walkthrough):
    for block in blocks(INTEGRATION):
        if block.language == "sh":
            for command in shell_commands(block.text):
                await asyncio.to_thread(walkthrough.follow, command)
        elif block.language == "python":
            walkthrough.apply(block)
    # the app the site runs is the wheel's, in the fresh virtualenv
    where = walkthrough.run("python -c 'import jobupdates; print(jobupdates.__file__)'")
    assert where.strip().startswith(str(walkthrough.env["VIRTUAL_ENV"])), where
    assert walkthrough.edits == [
        "mysite/settings.py: add at the end",
        "mysite/asgi.py: replace the file",
        "mysite/urls.py: add at the end",
    ]
    assert walkthrough.daphne is not None
    assert walkthrough.bridge is not None
    assert len(walkthrough.publishes) == 3, walkthrough.publishes

    cookie = await asyncio.to_thread(login, walkthrough.port, *STAFF)
    # the wheel's template and static files: the console page and everything it loads
    console = await asyncio.to_thread(fetch, walkthrough.port, "/console/", cookie)
    assets = re.findall(r'(?:src|href)="(/static/jobupdates/[^"]+)"', console)
    assert len(assets) == 4, console[:2000]
    for asset in assets:
        assert await asyncio.to_thread(fetch, walkthrough.port, asset, cookie), asset
    async with ws_connect(walkthrough.port, cookie) as ws:
        await welcomed(ws)
        received = []
        for command in walkthrough.publishes:
            output = await asyncio.to_thread(walkthrough.run, command)
            # redis-cli prints the receivers, the command says who got it, or where it
            # was added for the bridge (durable ingest)
            done = r"(^1$|received by 1 subscriber|^added .* to 'botrix:jobs:ingest')"
            assert re.search(done, output, re.M), output
            frame = await recv_json(ws)
            received.append({k: frame[k] for k in ("type", "job_id", "status", "data")})
    assert received == [
        {"type": "job_update", "job_id": "j-1", "status": "completed", "data": {"k": "v"}},
        {"type": "job_update", "job_id": "j-2", "status": "completed", "data": {"rows": 10}},
        {"type": "job_update", "job_id": "j-4", "status": "completed", "data": None},
    ]
