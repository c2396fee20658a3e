"""A standby that was itself disconnected during the gap reports the gap on takeover.

Two real ``run_bridge`` processes: only the standby's pub/sub connection is
killed in Redis (``CLIENT KILL ID``, found by matching ``CLIENT LIST``'s
addresses to the standby process's own TCP sockets), some updates are
PUBLISHed while it is away (the active bridge alone hears and records them),
the standby subscribes again, then the active bridge is SIGKILLed. Its ring
restarted when it re-subscribed, so it cannot prove it saw everything the dead
bridge did not record: on taking over it must say so (the WARNING line,
``gaps`` in ``/ws/stats``, ``jobupdates_bridge_gaps_total`` in ``/metrics``),
and record the gap, so that the connected client gets a ``reset``
(``updates_lost``) at that point of its stream.
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import Process, start_bridge
from harness.updates import job_update
from tests.conftest import CHANNEL, STAFF, Stack, _stack
from tests.e2e.test_registry import poll, stats

pytestmark = pytest.mark.e2e

BEFORE, AWAY = 10, 10
"""Updates published with both bridges subscribed, then with the standby away."""
GAP = r"takeover: updates published before (\d+) buffered one\(s\) may be lost: (.*)"


@pytest.fixture
def reporting_stack(redis_server, e2e_database) -> Iterator[Stack]:
    """The fast-path stack, with bridge reports every second and a 2 s lease."""
    yield from _stack(
        redis_server,
        e2e_database,
        "fast",
        JOBUPDATES_REGISTRY_INTERVAL="1",
        JOBUPDATES_REGISTRY_SOCKET_TIMEOUT="1",
        JOBUPDATES_BRIDGE_LEASE_TTL="2",
    )


def local_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process ``pid`` holds open (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if found := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(found.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def pubsub_client_of(client: redis.Redis, process: Process) -> dict:
    """The one ``CLIENT LIST TYPE pubsub`` entry whose address is one of the process's."""
    ports = local_ports(process.popen.pid)
    found = [
        entry
        for entry in client.client_list(_type="pubsub")
        if int(entry["addr"].rsplit(":", 1)[1]) in ports
    ]
    assert len(found) == 1, f"expected one pub/sub connection of pid {process.popen.pid}: {found}"
    return found[0]


def metrics(port: int, cookie: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def bridge_entry(document: dict, process: Process) -> dict | None:
    pid = f":{process.popen.pid}:"
    found = [entry for entry in document["bridge"]["bridges"] if pid in entry["bridge"]]
    return found[0] if found else None


@pytest.mark.parametrize("after", [0, 5], ids=["quiet-after-the-kill", "5-after-the-kill"])
async def test_a_standby_that_was_disconnected_during_the_gap_reports_it(
    reporting_stack: Stack, after: int
):
    """``after``: updates published between the kill and the takeover (buffered by the
    standby only): with none, its ring is empty and its subscription newer than the
    history's newest entry; with some, none of them matches the history."""
    stack = reporting_stack
    cookie = login(stack.port, *STAFF)
    active = stack.bridge
    # A long backoff: only its probe (every 0.2 s, Redis answering) brings it back.
    standby_env = dict(
        stack.env, JOBUPDATES_RECONNECT_INITIAL="600", JOBUPDATES_RECONNECT_MAX="600"
    )
    standby = start_bridge(standby_env, active=False)
    publisher = redis.Redis.from_url(stack.redis.url)
    received: list[int] = []
    resets: list[tuple[int, dict]] = []
    """Each reset with how many updates came before it."""

    async def until(count: int, *, reset: bool = False) -> None:
        while len(received) < count or (reset and not resets):
            frame = await recv_json(ws, timeout=30)
            if frame["type"] == "reset":
                resets.append((len(received), frame))
                continue
            assert frame["job_id"] == "gap", frame
            received.append(frame["data"]["n"])

    def publish(first: int, count: int) -> list[int]:
        with publisher.pipeline(transaction=False) as pipe:
            for n in range(first, first + count):
                pipe.publish(CHANNEL, job_update("gap", data={"n": n}))
            return [int(r) for r in pipe.execute()]

    try:
        standby.wait_for(r"-> subscribed: .* as a standby")
        async with ws_connect(stack.port, cookie) as ws:
            await welcomed(ws)
            before = publish(0, BEFORE)
            await until(BEFORE)

            killed = pubsub_client_of(publisher, standby)
            mark = standby.mark()
            assert publisher.execute_command("CLIENT", "KILL", "ID", killed["id"]) == 1
            # Redis dropped the subscription when CLIENT KILL returned; the standby can only
            # be back after it noticed (backing_off) and its probe's 0.2 s: publish now.
            away = publish(BEFORE, AWAY)
            sent = BEFORE + AWAY
            standby.wait_for(r"-> backing_off: lost Redis", after=mark)
            standby.wait_for(r"-> subscribed: .* as a standby", after=mark)
            await until(sent)  # the active bridge recorded and forwarded them
            assert active.running

            mark = standby.mark()
            active.kill()
            late = publish(sent, after)  # buffered by the standby only
            await asyncio.to_thread(standby.wait_for, r"is now the active bridge", after=mark)
            gap = await asyncio.to_thread(standby.wait_for, GAP, after=mark)
            await until(sent + after, reset=True)

            document: dict = {}

            def reported() -> bool:
                nonlocal document
                document = stats(stack.port, cookie)
                entry = bridge_entry(document, standby)
                return entry is not None and entry["gaps"] >= 1

            await poll("the standby's report with the gap", reported, timeout=10)
            exposed = await asyncio.to_thread(metrics, stack.port, cookie)
    finally:
        publisher.close()
        standby.stop()

    entry = bridge_entry(document, standby)
    series = re.findall(r'^jobupdates_bridge_gaps_total\{bridge="([^"]+)"\} (\S+)$', exposed, re.M)
    print(
        f"\nreceivers: {BEFORE} before {sorted(set(before))}, "
        f"{AWAY} with the standby away "
        f"{sorted(set(away))}, {after} after the kill {sorted(set(late))}; standby "
        f"pub/sub client id {killed['id']} ({killed['addr']}) killed; on takeover: "
        f"{gap.group(0)!r}; /ws/stats gaps {document['bridge']['gaps']} (standby "
        f"{entry['gaps'] if entry else None}); /metrics {series}; client received "
        f"{len(received)} of {sent + after}"
    )
    assert set(away) == {1}, "expected the updates published while away heard by one bridge"
    assert entry is not None
    assert entry["gaps"] >= 1
    assert document["bridge"]["gaps"] >= 1
    assert any(str(standby.popen.pid) in name and float(value) >= 1 for name, value in series)
    assert received == list(range(sent + after)), "expected every update once, in order"
    [(before_reset, reset)] = resets
    assert (before_reset, reset["reason"]) == (sent, "updates_lost"), (
        "expected the gap's reset in the stream where it was recorded: after what the dead "
        "bridge recorded, before what the standby forwarded"
    )
    assert re.fullmatch(r"\d+-\d+", reset["position"]), reset
