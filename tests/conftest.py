"""Fixtures shared by the suite: throwaway Redis servers and the project's processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from botrix_site.redis_server import RedisServer
from harness.processes import (
    ROOT,
    Process,
    child_env,
    migrated_database,
    start_bridge,
    start_daphne,
)
from harness.updates import CHANNEL
from jobupdates.conf import conf

STAFF = ("staff", "staff-password-1")
PLAIN = ("plain", "plain-password-1")
"""A user without the permission to receive every job."""
VIEWER = ("viewer", "viewer-password-1")
"""A user who is not staff but has ``jobupdates.view_all_jobs``."""


@pytest.fixture(autouse=True)
def fresh_conf() -> Iterator[None]:
    """Each test reads the settings afresh (a process keeps them: ``jobupdates.conf``),
    also those a ``monkeypatch.setenv`` changed, and after it is undone."""
    conf.reload()
    yield
    conf.reload()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port, gone after the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def publish(redis_server: RedisServer) -> Iterator[object]:
    """PUBLISH on the updates channel exactly as a worker does; returns the receiver count."""
    client = redis.Redis.from_url(redis_server.url)

    def _publish(payload: str | bytes, channel: str = CHANNEL) -> int:
        return int(client.publish(channel, payload))

    yield _publish
    client.close()


UNSHIPPED = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".devdata")
"""What :func:`dist` leaves out of the copy it builds from: the checkout's own state."""


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's wheel and sdist, built from this checkout as a release is
    (``python -m build``), once per session.

    Built from a copy without the checkout's ``build/`` and ``*.egg-info``: setuptools
    reads an old ``SOURCES.txt`` back, so a file dropped from the package data would
    still ship from a checkout that built before.
    """
    tree = tmp_path_factory.mktemp("tree") / "botrix-jobupdates"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*UNSHIPPED))
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def e2e_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database with staff, plain and viewer users, for real processes."""
    return migrated_database(
        tmp_path_factory.mktemp("e2e") / "db.sqlite3",
        "from django.contrib.auth.models import Permission, User;"
        f"User.objects.create_user({STAFF[0]!r}, password={STAFF[1]!r}, is_staff=True);"
        f"User.objects.create_user({PLAIN[0]!r}, password={PLAIN[1]!r});"
        f"viewer = User.objects.create_user({VIEWER[0]!r}, password={VIEWER[1]!r});"
        "viewer.user_permissions.add(Permission.objects.get(codename='view_all_jobs'))",
    )


@dataclass
class Stack:
    """Redis, one Daphne and one bridge, as deployed."""

    redis: RedisServer
    env: dict[str, str]
    daphne: Process
    port: int
    bridge: Process

    def restart_bridge(self) -> None:
        self.bridge = start_bridge(self.env)


LAYER_SETTINGS = {
    "fast": "botrix_site.settings",
    "core": "tests.e2e.core_layer_settings",
}


def _stack(
    redis_server: RedisServer, database: str, layer: str, **overrides: str
) -> Iterator[Stack]:
    env = child_env(
        REDIS_URL=redis_server.url,
        DATABASE_URL=database,
        DJANGO_SETTINGS_MODULE=LAYER_SETTINGS[layer],
        **overrides,
    )
    daphne, port = start_daphne(env)
    try:
        running = Stack(redis_server, env, daphne, port, start_bridge(env))
        yield running
        running.bridge.stop()
    finally:
        daphne.stop()


@pytest.fixture(params=sorted(LAYER_SETTINGS))
def stack(
    request: pytest.FixtureRequest, redis_server: RedisServer, e2e_database: str
) -> Iterator[Stack]:
    """The project as deployed: Redis, Daphne and one bridge, once per channel layer.

    A test that only holds for the fast-path layer narrows it with
    ``@pytest.mark.parametrize("stack", ["fast"], indirect=True)``.
    """
    yield from _stack(redis_server, e2e_database, request.param)


@pytest.fixture
def staff_cookie(stack: Stack) -> str:
    """The staff user's session, logged in through Daphne's admin login form."""
    from harness.clients import login

    return login(stack.port, *STAFF)
