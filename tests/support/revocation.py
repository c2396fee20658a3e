"""Two server processes whose clients lose their authority while connected.

:func:`two_processes` starts Redis, two Daphne processes ("a" and "b") with the
same environment and database, one bridge, and a :class:`DjangoChild` to make
the changes with; :func:`new_user` creates a user of one test, :func:`grant`
changes what the Redis-set authorizer grants. How the tests watch the sockets
is :mod:`tests.support.revoked_sockets`.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis
from websockets.sync.client import connect as sync_connect
from websockets.typing import Origin

from botrix_site.redis_server import RedisServer
from harness.clients import login
from harness.processes import Process, child_env, start_bridge, start_daphne
from harness.updates import CHANNEL, job_update
from tests.conftest import STAFF
from tests.e2e.authorizers import GRANTED_KEY
from tests.support.django_child import DjangoChild

__all__ = ["Cluster", "Server", "User", "demote", "grant", "new_user", "two_processes"]

PASSWORD = "rv-password-1"
"""The password of every user :func:`new_user` creates."""
AUTHORITY_CHANNELS = "*__group__jobupdates.authority"
"""The pub/sub channel of the authority group (channels_redis's name for it)."""


@dataclass
class Server:
    process: Process
    port: int


@dataclass
class Cluster:
    """Redis, two server processes, one bridge, and a Django process to make changes.

    Attributes:
        other_cookie: A session of the shared staff user (:data:`tests.conftest.STAFF`),
            logged in through the admin form: the other user, who keeps receiving.
    """

    redis: RedisServer
    env: dict[str, str]
    servers: dict[str, Server]
    bridge: Process
    django: DjangoChild
    other_cookie: str

    def change(self, code: str) -> Callable[[], float]:
        """A trigger: run ``code`` in the Django child (``u`` may be set first); it
        returns ``time.time()`` at its completion."""
        return lambda: self.django.run(code).done_at

    def publish(self, job_id: str, status: str = "processing") -> None:
        client = redis.Redis.from_url(self.redis.url)
        try:
            assert client.publish(CHANNEL, job_update(job_id, status)) >= 1, "expected the bridge"
        finally:
            client.close()


@contextlib.contextmanager
def two_processes(database: str, **overrides: str) -> Iterator[Cluster]:
    """Start the cluster (environment ``overrides`` for every process); stop it after.

    Returns once each server process listens for authority events (each starts to
    once it holds its first connection), so that no announcement is missed."""
    with RedisServer() as server, contextlib.ExitStack() as stack:
        env = child_env(REDIS_URL=server.url, DATABASE_URL=database, **overrides)
        with ThreadPoolExecutor(4) as pool:  # they start at once: half the time on 2 cores
            starting: dict[str, Future[Any]] = {
                "a": pool.submit(start_daphne, env, name="daphne-a"),
                "b": pool.submit(start_daphne, env, name="daphne-b"),
                "bridge": pool.submit(start_bridge, env),
                "django": pool.submit(DjangoChild, env),
            }
        started = {name: f.result() for name, f in starting.items() if not f.exception()}
        stack.callback(_stop_at_once, started)
        for future in starting.values():
            future.result()  # raises the first failure, once every started one will stop
        servers = {name: Server(*started[name]) for name in ("a", "b")}
        other_cookie = login(servers["a"].port, *STAFF)
        cluster = Cluster(server, env, servers, started["bridge"], started["django"], other_cookie)
        _wait_for_listeners(cluster)
        yield cluster


def _stop_at_once(started: dict[str, Any]) -> None:
    """Stop the processes :func:`two_processes` started, all at once."""
    stops = [
        running[0].stop if isinstance(running, tuple) else running.stop
        for running in started.values()
    ]
    with ThreadPoolExecutor(len(stops) or 1) as pool:
        for stopping in [pool.submit(stop) for stop in stops]:
            stopping.result()


def _wait_for_listeners(cluster: Cluster, timeout: float = 20.0) -> None:
    """Connect once to each process, then wait until both subscribed to the authority
    group (Redis's ``PUBSUB NUMSUB``)."""
    for server in cluster.servers.values():
        url = f"ws://127.0.0.1:{server.port}/ws"
        origin = Origin(f"http://127.0.0.1:{server.port}")
        headers = {"Cookie": cluster.other_cookie}
        with sync_connect(url, origin=origin, additional_headers=headers) as ws:
            welcome = json.loads(ws.recv(timeout=10))
            server.process.wait_for(f"client {welcome['client_id']} connected")
    client = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    deadline = time.monotonic() + timeout
    try:
        while True:
            channels = client.pubsub_channels(AUTHORITY_CHANNELS)
            counts = dict(client.pubsub_numsub(*channels)) if channels else {}
            if sum(counts.values()) >= len(cluster.servers):
                return
            assert time.monotonic() < deadline, f"expected both processes to listen: {counts}"
            time.sleep(0.05)  # polling Redis for the subscriptions, not waiting for time
    finally:
        client.close()


@dataclass(frozen=True)
class User:
    name: str
    password: str
    pk: str


def new_user(
    django: DjangoChild,
    *,
    staff: bool = True,
    superuser: bool = False,
    permission: bool = False,
    group: str | None = None,
) -> User:
    """Create a user of this test only (``group``: a new group with the all-jobs
    permission, of that name, with the user in it), with :data:`PASSWORD`."""
    name = f"rv-{uuid.uuid4().hex[:10]}"
    code = (
        "if 'PASSWORD_HASH' not in globals():  # one slow hash per process, not per user\n"
        "    from django.contrib.auth.hashers import make_password\n"
        f"    PASSWORD_HASH = make_password({PASSWORD!r})\n"
        f"u = User(username={name!r}, password=PASSWORD_HASH,"
        f" is_staff={staff!r}, is_superuser={superuser!r})\n"
        "u.save()\n"
        f"if {permission!r}: u.user_permissions.add(VIEW_ALL_JOBS)\n"
        f"if {group!r}:\n"
        f"    g = Group.objects.create(name={group!r}); g.permissions.add(VIEW_ALL_JOBS)\n"
        "    u.groups.add(g)\n"
        "result = u.pk"
    )
    return User(name, PASSWORD, str(django.run(code).result))


def demote(django: DjangoChild, user: User) -> None:
    """Take ``is_staff`` away without a signal (``QuerySet.update``), before the user
    connects: the admin's login form is for staff, the rest of the test is not."""
    django.run(f"User.objects.filter(pk={user.pk}).update(is_staff=False)")


def grant(cluster: Cluster, user: User, *jobs: str, revoke: bool = False) -> None:
    """Add ``jobs`` to what :func:`tests.e2e.authorizers.granted_in_redis` grants
    ``user``, or take them away (``revoke``): the app's own data, no signal."""
    client = redis.Redis.from_url(cluster.redis.url)
    key = GRANTED_KEY.format(username=user.name)
    try:
        if revoke:
            client.srem(key, *jobs)
        else:
            client.sadd(key, *jobs)
    finally:
        client.close()
