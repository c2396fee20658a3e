"""A replay obeys the slow-client bound, end to end.

Clients that never read and resume from the oldest position of a large
history must not make Daphne buffer that history: replay is read a page at a
time and written through the same backlog bound as live updates, so each
such client costs about JOBUPDATES_MAX_BACKLOG_BYTES before it is dropped as
slow (error ``slow_client``, close 4408, socket aborted).
"""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from harness.clients import recv_json, welcomed, ws_connect
from harness.updates import job_update
from jobupdates.history import PAGE_BYTES
from tests.support.clients import read_until_dropped, stalled_client
from tests.support.memory import rss, sample_rss

pytestmark = pytest.mark.e2e

UPDATES = 150
DATA_BYTES = 200 * 1024
STALLED = 5
BOUND = 1024 * 1024
"""JOBUPDATES_MAX_BACKLOG_BYTES (the default)."""
ALLOCATOR_SLACK = (10 if sys.version_info >= (3, 13) else 4) * 1024 * 1024
"""RSS the allocator keeps beyond live data at the peak. Python 3.13 keeps more: 17.4-19.9
MiB of growth in eight runs against 10.4-12.3 on 3.11 (2026-11-30, this code), with the
same bytes unread; not cyclic garbage holding the frames (none found with
``gc.DEBUG_SAVEALL``), though 3.11's collection thresholds on 3.13 (700, not 2000) gave
12.0-16.4."""
SLACK = STALLED * (BOUND + PAGE_BYTES) + ALLOCATOR_SLACK
"""Bytes of RSS growth allowed beyond the stalled clients' bounds: per client, a
page of history in flight and the copy Twisted makes of its buffer when it joins
the pending writes (up to one more bound); then the allocator's slack. Measured on
3.11: 8.4-13.9 MiB of growth in six runs (2026-11-30, before the first page of a
replay was cut from 4 entries to 1), 10.4-12.3 after; without the bound the five would
pin 5 x 30 MiB."""


async def stalled_replay(port: int, cookie: str, since: str) -> socket.socket:
    """A client that resumes from ``since`` and never reads (see ``stalled_client``)."""
    return await asyncio.to_thread(stalled_client, port, cookie, path=f"/ws?since={since}")


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_stalled_clients_replaying_a_large_history_are_dropped_at_the_bound(
    stack, staff_cookie, publish
):
    padding = "x" * DATA_BYTES
    async with ws_connect(stack.port, staff_cookie) as reader:
        await welcomed(reader)
        positions = []
        for n in range(UPDATES):  # one at a time: this reader must not be slow itself
            publish(job_update(f"big-{n}", "processing", padding))
            positions.append((await recv_json(reader, timeout=20))["position"])
    oldest = positions[0]

    pid = stack.daphne.popen.pid
    before = rss(pid)
    peak, done = [before], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, peak, done))
    mark = stack.daphne.mark()
    sockets = await asyncio.gather(
        *(stalled_replay(stack.port, staff_cookie, oldest) for _ in range(STALLED))
    )
    try:
        lines = await asyncio.to_thread(
            stack.daphne.wait_for_count, r"is too slow \((\d+) bytes unread", STALLED, after=mark
        )
        for sock in sockets:  # aborted after the grace period: the socket ends
            await asyncio.to_thread(read_until_dropped, sock, 15)
    finally:
        done.set()
        await sampler
        for sock in sockets:
            sock.close()
    unread = [int(line.group(1)) for line in lines]
    growth = peak[0] - before
    print(
        f"\n{STALLED} stalled replays of {UPDATES} x {DATA_BYTES // 1024} KiB dropped at"
        f" {unread} unread bytes; Daphne RSS before {before / 2**20:.1f} MiB,"
        f" peak {peak[0] / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB)"
    )
    assert all(bytes_ <= BOUND + DATA_BYTES + 1024 for bytes_ in unread), unread
    assert growth <= STALLED * BOUND + SLACK, (
        f"expected RSS to grow by at most the bounds: {growth}"
    )
    assert stack.daphne.running

    # The process still serves: a reader that reads gets the whole replay.
    async with ws_connect(stack.port, staff_cookie, f"/ws?since={oldest}") as ws:
        await welcomed(ws)
        got = [(await recv_json(ws, timeout=20))["position"] for _ in range(UPDATES - 1)]
    assert got == positions[1:]
