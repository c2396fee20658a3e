"""The three systems under test, each started as deployed on a throwaway Redis.

* ``project``: Daphne with the project's flags (:func:`botrix_site.serve.daphne_argv`)
  serving ``botrix_site.asgi`` and ``manage.py run_bridge``, both configured by
  ``botrix_site.settings`` alone, so a new channel layer there is what gets measured;
* ``websockets``: :mod:`benchmarks.reference_server`, the baseline;
* ``stock``: Daphne serving :mod:`benchmarks.stock.asgi` and :mod:`benchmarks.stock.bridge`;
* ``daphne``: Daphne serving :mod:`benchmarks.plain_daphne`, the floor Daphne itself sets;
* ``project-noregistry``, ``project-nosweep``: the project with the client
  registry, or the re-validation sweep, turned off (on/off A/Bs with ``project``);
* ``project-deflate``, ``project-msgpack`` and the other :data:`VARIANTS`: the
  project as deployed, its clients offering permessage-deflate or the msgpack
  subprotocol (:class:`benchmarks.wire.Offer`), compared with ``project`` (whose
  clients offer neither) round by round.

Servers, bridges and Redis are pinned to the server core once started.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.sysstats import pin
from benchmarks.wire import MSGPACK_SUBPROTOCOL, Negotiated, Offer
from botrix_site.redis_server import RedisServer
from botrix_site.serve import APPLICATION, daphne_argv
from harness.clients import login
from harness.processes import (
    LISTENING,
    Process,
    child_env,
    migrated_database,
    start_bridge,
    start_daphne,
)

logger = logging.getLogger(__name__)

Starter = Callable[[RedisServer, dict[str, str]], "Stack"]

DEFAULT_TARGETS = ("project", "websockets", "stock", "project-deflate", "project-msgpack")
DEFLATED = Negotiated(deflate=True, server_no_context_takeover=True)
"""What the server agrees to for an offer of permessage-deflate (its contract)."""
MSGPACK = Negotiated(subprotocol=MSGPACK_SUBPROTOCOL)
NOTHING = Negotiated()


@dataclass(frozen=True)
class Variant:
    """The project's server with clients that offer more than ``project``'s."""

    offer: Offer
    agreed: Negotiated
    """What the server must agree to: a connection that gets anything else is flagged."""
    settings: dict[str, str] = field(default_factory=dict)
    """Settings changed for its server."""


VARIANTS: dict[str, Variant] = {
    "project-deflate": Variant(Offer(deflate=True), DEFLATED),
    "project-msgpack": Variant(Offer(subprotocol=MSGPACK_SUBPROTOCOL), MSGPACK),
    "project-msgpack-deflate": Variant(
        Offer(deflate=True, subprotocol=MSGPACK_SUBPROTOCOL),
        Negotiated(deflate=True, server_no_context_takeover=True, subprotocol=MSGPACK_SUBPROTOCOL),
    ),
    "project-deflate-off": Variant(
        Offer(deflate=True), NOTHING, {"JOBUPDATES_PERMESSAGE_DEFLATE": "false"}
    ),
}
"""``project-deflate-off``: the offer refused, compression turned off on the server."""
VARIANT_BASE = "project"
"""What the variants are compared with: the same server, clients offering nothing."""
VARIANT_PHASES = frozenset({"idle", "throughput", "latency"})
"""The phases a variant runs: the storm and the bridge's ingest do not depend on the offer."""
TARGETS = (
    *DEFAULT_TARGETS,
    "daphne",
    "project-noregistry",
    "project-nosweep",
    *(name for name in VARIANTS if name not in DEFAULT_TARGETS),
)
BASELINE = "websockets"
COOKIELESS = frozenset({"websockets", "daphne"})
"""Targets with no Django: no login, no cookie."""
USER = ("bench", "bench-password-1")
PROJECT_ENV = {
    "JOBUPDATES_MAX_CONNECTIONS_PER_USER": "1000000",
    "JOBUPDATES_MAX_CONNECTIONS_PER_PROCESS": "20000",
}
"""The limits raised for the project: every benchmark client is the one bench user
(its own session of it, or the harness's login with ``--shared-session``; the
default cap is 20 connections per user), and the 10,000-connection run
sits exactly at the default per-process cap. Everything else, the channel
layer included, comes from ``botrix_site.settings``."""


@dataclass
class Stack:
    """One running target: its Redis, server, optional bridge, and how to reach it."""

    name: str
    redis: RedisServer
    server: Process
    port: int
    bridge: Process | None = None
    cookie: str = ""
    """The harness's own login (the warm-up's, and what ``/metrics`` is read with)."""
    cookies: list[str] = field(default_factory=list)
    """One session per client (:mod:`benchmarks.sessions`); empty: every client sends
    :attr:`cookie`."""
    extra: list[Process] = field(default_factory=list)
    offer: Offer = field(default_factory=Offer)
    """What the target's clients offer in their handshake."""
    agreed: Negotiated = NOTHING
    """What the server must agree to (:attr:`Negotiated.label`)."""

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_pids(self) -> list[int]:
        return [self.server.popen.pid]

    @property
    def bridge_pids(self) -> list[int]:
        return [self.bridge.popen.pid] if self.bridge else []

    @property
    def redis_pids(self) -> list[int]:
        assert self.redis.process is not None
        return [self.redis.process.pid]

    def stop(self) -> None:
        """Stop the bridge, the server, then Redis."""
        for process in [*self.extra, *([self.bridge] if self.bridge else []), self.server]:
            code = process.stop()
            if code not in (0, -15):
                logger.warning("%s exited with %s:\n%s", process.name, code, process.output())
        self.redis.stop()


def prepare_database(directory: Path) -> str:
    """Migrate a fresh SQLite database with the benchmark user; return its URL."""
    return migrated_database(
        directory / "bench.sqlite3",
        "from django.contrib.auth.models import User;"
        f"User.objects.create_user({USER[0]!r}, password={USER[1]!r}, is_staff=True)",
    )


def start(name: str, database_url: str, cpus: set[int]) -> Stack:
    """Start target ``name`` on a fresh Redis, pin it to ``cpus``; return it logged in."""
    redis = RedisServer().start()
    assert redis.process is not None
    pin(redis.process.pid, cpus)
    env = child_env(REDIS_URL=redis.url, DATABASE_URL=database_url)
    try:
        stack = _STARTERS[name](redis, env)
    except BaseException:
        redis.stop()
        raise
    try:
        for pid in [*stack.server_pids, *stack.bridge_pids]:
            pin(pid, cpus)
        if name not in COOKIELESS:  # staff: the admin login form is the way in, as in the tests
            stack.cookie = login(stack.port, *USER)
    except BaseException:
        stack.stop()
        raise
    return stack


def _project(redis: RedisServer, env: dict[str, str]) -> Stack:
    env = {**env, **PROJECT_ENV}
    daphne, port = start_daphne(env)
    try:
        return Stack("project", redis, daphne, port, bridge=start_bridge(env))
    except BaseException:
        daphne.stop()
        raise


def _project_without_registry(redis: RedisServer, env: dict[str, str]) -> Stack:
    """The project with ``JOBUPDATES_REGISTRY=0``: what the client registry costs."""
    stack = _project(redis, {**env, "JOBUPDATES_REGISTRY": "0"})
    stack.name = "project-noregistry"
    return stack


def _project_without_sweep(redis: RedisServer, env: dict[str, str]) -> Stack:
    """The project with ``JOBUPDATES_REAUTH_SECONDS=0``: what the re-validation sweep costs."""
    stack = _project(redis, {**env, "JOBUPDATES_REAUTH_SECONDS": "0"})
    stack.name = "project-nosweep"
    return stack


def _variant(name: str) -> Starter:
    """The starter of variant ``name`` (:data:`VARIANTS`)."""
    variant = VARIANTS[name]

    def start(redis: RedisServer, env: dict[str, str]) -> Stack:
        stack = _project(redis, {**env, **variant.settings})
        stack.name, stack.offer, stack.agreed = name, variant.offer, variant.agreed
        return stack

    return start


def _plain_daphne_process(name: str, application: str, env: dict[str, str]) -> Process:
    """Start ``python -m daphne`` with the project's flags serving ``application``."""
    argv = daphne_argv("127.0.0.1", 0)
    assert argv[-1] == APPLICATION
    argv[-1] = application
    return Process(name, [sys.executable, "-m", "daphne", *argv], env)


def _stock(redis: RedisServer, env: dict[str, str]) -> Stack:
    env = {**env, "DJANGO_SETTINGS_MODULE": "benchmarks.stock.settings"}
    daphne = _plain_daphne_process("daphne-stock", "benchmarks.stock.asgi:application", env)
    try:
        port = int(daphne.wait_for(LISTENING).group(1))
        bridge = Process("bridge-stock", [sys.executable, "-m", "benchmarks.stock.bridge"], env)
        try:
            bridge.wait_for(r"-> subscribed")
        except BaseException:
            bridge.stop()
            raise
        return Stack("stock", redis, daphne, port, bridge=bridge)
    except BaseException:
        daphne.stop()
        raise


def _daphne(redis: RedisServer, env: dict[str, str]) -> Stack:
    """Plain Daphne: it subscribes on its first connection (the warm-up's)."""
    env = {k: v for k, v in env.items() if not k.startswith("DJANGO_")}
    daphne = _plain_daphne_process("daphne-plain", "benchmarks.plain_daphne:application", env)
    try:
        return Stack("daphne", redis, daphne, int(daphne.wait_for(LISTENING).group(1)))
    except BaseException:
        daphne.stop()
        raise


def _websockets(redis: RedisServer, env: dict[str, str]) -> Stack:
    argv = [sys.executable, "-m", "benchmarks.reference_server", "--redis-url", redis.url]
    server = Process("websockets", argv, env)
    try:
        port = int(server.wait_for(r"listening on port (\d+)").group(1))
        server.wait_for(r"^subscribed")
        return Stack("websockets", redis, server, port)
    except BaseException:
        server.stop()
        raise


_STARTERS: dict[str, Starter] = {
    "project": _project,
    "stock": _stock,
    "websockets": _websockets,
    "daphne": _daphne,
    "project-noregistry": _project_without_registry,
    "project-nosweep": _project_without_sweep,
    **{name: _variant(name) for name in VARIANTS},
}
