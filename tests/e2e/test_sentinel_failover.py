"""A Redis Sentinel failover, end to end.

Real processes: a primary, a replica and three sentinels (harness/sentinels.py,
down-after 1 s), a Daphne and two bridges, all configured with one
``redis+sentinel://`` URL, and a worker that publishes through the same URL.
The primary is killed with SIGKILL, once the replica acknowledged every write
(``WAIT``); the sentinels promote the replica, and every process must follow
it by itself. A client that left before the failover then resumes from its
last position and gets exactly what it missed, in order.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import Process, child_env, start_bridge, start_daphne
from harness.sentinels import SentinelCluster
from harness.updates import job_update
from jobupdates import redis_client
from jobupdates.monitoring.reading import read_snapshot
from tests.conftest import CHANNEL, STAFF

pytestmark = pytest.mark.e2e

RECOVERY_LIMIT = 15.0
"""Seconds after the primary's SIGKILL within which updates must flow again."""
PROBE_INTERVAL = 0.2
AWAY = 10
"""Updates published while a client is away, before the failover."""
END = "end"
"""The job of the update that ends what a test reads from a client (published last)."""


@pytest.fixture
def cluster(tmp_path):
    started = SentinelCluster(tmp_path).start()
    yield started
    started.stop()


@pytest.fixture
def processes():
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def publish(client: redis.Redis, payload: str) -> int:
    """PUBLISH as a worker does; 0 while the failover is under way (it retries)."""
    try:
        return int(client.publish(CHANNEL, payload))
    except (redis.RedisError, OSError):
        return 0


async def first_probe(
    ws, client: redis.Redis, job_id: str, since: float, log: list[dict] | None = None
) -> tuple[dict, float]:
    """Publish probes until one arrives; return it and the seconds since ``since``.
    Every frame read is appended to ``log``, if given."""
    n = 0
    while True:
        publish(client, job_update(job_id, data={"n": n}))
        n += 1
        try:
            frame = await recv_json(ws, timeout=PROBE_INTERVAL)
        except TimeoutError:
            assert time.monotonic() - since < 2 * RECOVERY_LIMIT, "expected updates to flow again"
            continue
        if log is not None:
            log.append(frame)
        if frame.get("job_id") == job_id:
            return frame, time.monotonic() - since


def reports(client: redis.Redis) -> list[tuple[str, str, int]]:
    """Each bridge's role, Redis primary and failovers, as /ws/stats shows them."""
    from jobupdates.ingest.report import read_reports

    return sorted((r.role, r.primary, r.failovers) for r in read_reports(client))


async def test_updates_flow_again_after_the_primary_is_killed(cluster, processes, e2e_database):
    env = child_env(
        REDIS_URL=cluster.url,
        DATABASE_URL=e2e_database,
        JOBUPDATES_REGISTRY_INTERVAL="0.5",
        JOBUPDATES_REGISTRY_SOCKET_TIMEOUT="0.5",
    )
    daphne, port = start_daphne(env)
    processes.append(daphne)
    processes.append(start_bridge(env))
    processes.append(start_bridge(env, active=False))
    worker = redis_client.sync_client(redis_client.Use.INTERACTIVE, cluster.url)
    cookie = login(port, *STAFF)
    got: list[dict] = []  # every frame the client connected throughout gets, from the first probe
    async with ws_connect(port, cookie) as ws:
        await welcomed(ws)
        before, _ = await first_probe(ws, worker, "before", time.monotonic(), got)
        async with ws_connect(port, cookie) as away:  # leaves before the failover
            await welcomed(away)
            seen, _ = await first_probe(away, worker, "seen", time.monotonic())
        for n in range(AWAY):  # published while it is away, before the failover
            assert publish(worker, job_update("away", data={"n": n})) == 2  # both bridges
        live = []
        while len(live) < AWAY:  # recorded, then sent: the connected client has them all
            frame = await recv_json(ws, timeout=10)
            got.append(frame)
            if frame.get("job_id") == "away":
                live.append(frame["data"]["n"])
        assert live == list(range(AWAY))
        replicas = await asyncio.to_thread(cluster.wait_replicated)
        assert replicas == 1, "expected the replica to acknowledge the history's writes (WAIT)"
        old = cluster.kill_primary()
        killed = time.monotonic()
        failover = await asyncio.to_thread(cluster.wait_for_failover, old)
        after, recovered = await first_probe(ws, worker, "after", killed, got)
        print(f"failover: sentinels {failover:.2f} s, updates again {recovered:.2f} s after kill")
        assert recovered < RECOVERY_LIMIT
        assert cluster.primary_port() == cluster.replica.port
        deadline = time.monotonic() + RECOVERY_LIMIT
        new = f"127.0.0.1:{cluster.replica.port}"
        while reports(worker) != [("active", new, 1), ("standby", new, 1)]:  # on the new primary
            assert time.monotonic() < deadline, f"expected one active bridge: {reports(worker)}"
            await asyncio.sleep(0.2)
        for bridge in processes[1:]:  # each says what happened
            bridge.wait_for(rf"bridge: Redis is now {new}, was 127.0.0.1:{old} \(a failover")
        while len(read_snapshot(worker).clients) != 1:  # the registry writes to the new primary
            assert time.monotonic() < deadline, "expected the client listed on the new primary"
            await asyncio.sleep(0.2)
        resumed = await resume(port, cookie, seen["position"], worker)
        while not got or got[-1].get("job_id") != END:  # the connected client gets it too
            got.append(await recv_json(ws, timeout=10))
    assert before["type"] == after["type"] == "job_update"
    worker.close()

    [at] = [i for i, frame in enumerate(got) if frame.get("position") == seen["position"]]
    missed = got[at + 1 : -1]  # what the resuming client missed, as the connected one got it
    print(f"resumed across the failover: {[(f.get('job_id'), f.get('data')) for f in resumed]}")
    assert [f["data"]["n"] for f in missed if f.get("job_id") == "away"] == list(range(AWAY))
    assert {(f["type"], f["job_id"]) for f in missed} <= {
        ("job_update", job) for job in ("seen", "away", "after")
    }, missed
    assert resumed == missed, (
        "expected exactly the updates published after its last one, in order, with the"
        f" positions the connected client got (no reset, none missing, none more): got\n"
        f"{resumed}\nexpected\n{missed}"
    )


async def resume(port: int, cookie: str, since: str, worker: redis.Redis) -> list[dict]:
    """Reconnect with ``since``; return every frame it gets before an :data:`END` update,
    published once it is welcomed: the replay, then whatever was published meanwhile."""
    async with ws_connect(port, cookie, path=f"/ws?since={since}") as ws:
        await welcomed(ws)
        assert publish(worker, job_update(END)) >= 1, "expected the active bridge subscribed"
        frames: list[dict] = []
        while (frame := await recv_json(ws, timeout=10)).get("job_id") != END:
            frames.append(frame)
        return frames
