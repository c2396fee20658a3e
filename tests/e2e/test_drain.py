"""A deploy closes every client cleanly: SIGTERM and SIGINT drain Daphne.

Real redis-server, Daphne (``python -m botrix_site.serve``) and run_bridge
processes; real WebSocket clients in one asyncio loop. On SIGTERM a Daphne
stops listening and closes each client with a ``server_restarting`` error
frame and close 1012, spread over ``JOBUPDATES_DRAIN_SECONDS``; each
consumer runs its ordinary disconnect, so the registry forgets the clients
at once (not after two refresh intervals).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import msgpack
import pytest
import redis
from websockets.exceptions import ConnectionClosed

from botrix_site.redis_server import RedisServer
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import Process, child_env, start_bridge, start_daphne
from harness.updates import job_update
from jobupdates.monitoring.reading import read_snapshot
from tests.conftest import CHANNEL, STAFF

pytestmark = pytest.mark.e2e

CLIENTS = 200
BATCH = 25
"""Clients connected at once, so the listen backlog is never the question."""
DRAIN_SECONDS = 2.0
PUBLISH_EVERY = 0.02
"""Seconds between two published updates (50 updates/s, all through the restart)."""
JITTER = (0.5, 3.0)
"""Reconnect delay after a 1012, in seconds, as jobupdates.js draws it."""
DRAINED = re.compile(r"drain: closed (\d+) WebSocket client\(s\).* in ([\d.]+) s; (\d+) consumer")


@pytest.fixture
def env(redis_server: RedisServer, e2e_database: str) -> dict[str, str]:
    return child_env(
        REDIS_URL=redis_server.url,
        DATABASE_URL=e2e_database,
        JOBUPDATES_DRAIN_SECONDS=str(DRAIN_SECONDS),
        JOBUPDATES_MAX_CONNECTIONS_PER_USER=str(CLIENTS * 2),
        # Long enough that a client the drain did not unregister stays listed.
        JOBUPDATES_REGISTRY_INTERVAL="60",
    )


@pytest.fixture
def daphnes(env: dict[str, str]) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@dataclass
class Client:
    """One resuming client: what it saw on the old process, then on the new one."""

    old_id: str = ""
    seen: list[str] = field(default_factory=list)
    position: str | None = None
    restarting: dict[str, object] | None = None
    close_code: int | None = None
    back_at: float | None = None

    async def read(self, ws, done: Callable[[list[str]], bool] = lambda seen: False) -> None:
        """Record updates until the connection closes, or ``done(seen)``."""
        while not done(self.seen):
            try:
                frame = json.loads(await ws.recv())
            except ConnectionClosed:
                self.close_code = ws.close_code
                return
            if frame["type"] == "job_update":
                self.seen.append(frame["job_id"])
                self.position = frame["position"]
            elif frame["type"] == "error":
                self.restarting = frame


async def connect_all(port: int, cookie: str) -> list[tuple[Client, object]]:
    connected = []
    for _ in range(CLIENTS // BATCH):
        batch = await asyncio.gather(*(ws_connect(port, cookie) for _ in range(BATCH)))
        for ws in batch:
            connected.append((Client(old_id=await welcomed(ws)), ws))
    return connected


async def test_sigterm_under_200_clients_closes_each_with_1012_and_they_resume_without_loss(
    env, daphnes, redis_server
):
    old, old_port = start_daphne(env)
    new, new_port = start_daphne(env)
    daphnes += [old, new]
    for daphne in (old, new):  # the lean server (jobupdates.delivery.lean_server) serves it all
        daphne.wait_for(r"lean connections: on")
    bridge = start_bridge(env)
    daphnes.append(bridge)
    cookie = login(old_port, *STAFF)
    clients = await connect_all(old_port, cookie)
    publisher = redis.Redis.from_url(redis_server.url)
    published: list[str] = []
    all_back = asyncio.Event()
    finished = asyncio.Event()

    async def publish_throughout() -> None:
        extra = 25  # updates published once every client is back
        while extra:
            job_id = f"d-{len(published)}"
            published.append(job_id)
            assert publisher.publish(CHANNEL, job_update(job_id)) == 1
            extra -= all_back.is_set()
            if not extra:
                finished.set()  # before the last update can reach a client
            await asyncio.sleep(PUBLISH_EVERY)

    def read_everything(seen: list[str]) -> bool:
        return finished.is_set() and bool(seen) and seen[-1] == published[-1]

    async def resume(client: Client, ws) -> object:
        """Read until the drain closes ``ws``; reconnect; return the new, open connection."""
        await client.read(ws)
        await asyncio.sleep(random.uniform(*JITTER))
        again = await ws_connect(new_port, cookie, f"/ws?since={client.position}")
        await welcomed(again)
        client.back_at = time.monotonic()
        if all(c.back_at for c, _ in clients):
            all_back.set()
        await asyncio.wait_for(client.read(again, read_everything), 30)
        return again

    publishing = asyncio.ensure_future(publish_throughout())
    while len(published) < 10:  # updates are flowing before the stop
        await asyncio.sleep(PUBLISH_EVERY)
    sigterm_at = time.monotonic()
    old.signal(signal.SIGTERM)
    resumed = await asyncio.wait_for(asyncio.gather(*(resume(c, ws) for c, ws in clients)), 60)
    await publishing
    old.popen.wait(timeout=30)
    publisher.close()

    restarting = [c.restarting for c, _ in clients]
    assert all(
        frame is not None and frame["code"] == "server_restarting" for frame in restarting
    ), f"expected every client to get server_restarting, got {restarting[:3]}..."
    codes = {c.close_code for c, _ in clients}
    assert codes == {1012}, f"expected close 1012 for every client, got {codes}"
    for client, _ in clients:
        assert client.seen == published, (
            f"expected every update exactly once across the restart, in order; client "
            f"{client.old_id} missed {sorted(set(published) - set(client.seen))[:5]}, "
            f"extra {len(client.seen) - len(set(client.seen))}"
        )
    drained = DRAINED.search("\n".join(old.matching("drain: closed")))
    assert drained, f"expected the drain's summary line:\n{old.output()}"
    assert int(drained.group(1)) == CLIENTS
    assert int(drained.group(3)) == CLIENTS, "expected every consumer to finish its disconnect"

    snapshot = read_snapshot(redis.Redis.from_url(redis_server.url))
    listed = {c.client_id for c in snapshot.clients}
    assert not listed & {c.old_id for c, _ in clients}, "expected the drained clients unlisted"
    assert len(listed) == CLIENTS, (
        f"expected the {CLIENTS} resumed clients listed, got {len(listed)}"
    )
    await asyncio.gather(*(ws.close() for ws in resumed))

    back = max(c.back_at or 0 for c, _ in clients) - sigterm_at
    print(
        f"\ndrain: {CLIENTS} clients closed in {drained.group(2)} s "
        f"(JOBUPDATES_DRAIN_SECONDS={DRAIN_SECONDS:g}); all back {back:.2f} s after SIGTERM "
        f"(reconnect jitter {JITTER[0]:g}-{JITTER[1]:g} s); {len(published)} updates, none lost"
    )


async def test_sigint_drains_too(env, daphnes):
    env = {**env, "JOBUPDATES_DRAIN_SECONDS": "0"}
    daphne, port = start_daphne(env)
    daphnes.append(daphne)
    cookie = login(port, *STAFF)
    sockets = [await ws_connect(port, cookie) for _ in range(3)]
    for ws in sockets:
        await welcomed(ws)
    daphne.wait_for(r"drain: ready")  # Twisted's signal handlers are in place
    daphne.signal(signal.SIGINT)
    for ws in sockets:
        try:
            frame = await recv_json(ws, timeout=20)
        except TimeoutError:
            raise AssertionError(f"expected a drain on SIGINT:\n{daphne.output()}") from None
        assert (frame["type"], frame["code"]) == ("error", "server_restarting"), frame
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
        assert ws.close_code == 1012
    daphne.wait_for(r"drain: closed 3 WebSocket client\(s\).*3 consumer\(s\) finished")
    assert daphne.popen.wait(timeout=20) == 0


def test_daphne_without_clients_exits_without_waiting_out_the_drain(env, daphnes):
    env = {**env, "JOBUPDATES_DRAIN_SECONDS": "60"}
    daphne, _ = start_daphne(env)
    daphnes.append(daphne)
    daphne.wait_for(r"drain: ready")  # the reactor runs: SIGTERM is Twisted's, not fatal
    daphne.signal(signal.SIGTERM)
    daphne.wait_for(r"drain: stopped listening; closing 0 WebSocket client\(s\) over 60 s")
    # Well under the 60 s drain: a drain that waited it out would fail here.
    assert daphne.popen.wait(timeout=20) == 0


async def test_a_msgpack_client_is_told_in_msgpack(env, daphnes):
    """The drain answers in each connection's encoding, compressed if negotiated."""
    env = {**env, "JOBUPDATES_DRAIN_SECONDS": "0"}
    daphne, port = start_daphne(env)
    daphnes.append(daphne)
    cookie = login(port, *STAFF)
    async with ws_connect(port, cookie, subprotocols=["jobupdates.v1.msgpack"]) as ws:
        assert msgpack.unpackb(await ws.recv())["type"] == "welcome"
        daphne.wait_for(r"drain: ready")
        daphne.signal(signal.SIGTERM)
        frame = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 20))
        assert (frame["type"], frame["code"]) == ("error", "server_restarting"), frame
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1012
    assert daphne.popen.wait(timeout=20) == 0
