"""A client that stops reading during a burst, end to end.

Daphne has no write backpressure: what a client does not read piles up in
Twisted's transport buffer. The feed checks that buffer after every send and
drops the client past JOBUPDATES_MAX_BACKLOG_BYTES (1 MiB by default) with
``slow_client`` and close code 4408, aborting the socket 2 s later.

The slow client here is a raw socket with a 4 KiB receive buffer that completes
the handshake and never reads again; three ordinary clients read everything.
During a burst of large updates the test measures the ordinary clients'
publish-to-receipt latency and Daphne's RSS. The bounds below are documented
in docs/protocol.md (*Slow clients*); the figures measured on the 2-core
development machine are there too.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import time

import pytest
import redis.asyncio as aioredis

from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import Process
from harness.updates import job_update
from tests.conftest import CHANNEL
from tests.support.clients import read_until_dropped, stalled_client
from tests.support.memory import rss, sample_rss

pytestmark = pytest.mark.e2e

FAST_CLIENTS = 3
BURST = 300
"""Updates in the burst: 18.75 MiB that the slow client would pin without the limit."""
DATA_BYTES = 64 * 1024
RATE = 40.0
"""Updates per second during the burst."""
P99_LIMIT = 0.5
"""Seconds: the ordinary clients' p99 publish-to-receipt latency during the burst."""
RSS_GROWTH_LIMIT = 8 * 1024 * 1024
"""Bytes Daphne's RSS may grow during the burst: the 1 MiB backlog limit, the
frames in flight to the ordinary clients, and allocator slack; far less than the
18.75 MiB the slow client would pin if it were kept."""


def dropped(daphne: Process, after: int, sock: socket.socket) -> tuple[re.Match[str], float, float]:
    """Wait until Daphne logs the slow client, and only then read its socket until the
    server closes it; return the log line, when it came, and when the socket closed."""
    line = daphne.wait_for(r"is too slow \((\d+) bytes unread", after=after, timeout=30)
    logged_at = time.monotonic()
    read_until_dropped(sock, 10)
    return line, logged_at, time.monotonic()


async def reader(ws, latencies: list[float], count: int) -> None:
    """Receive ``count`` burst updates, recording each one's publish-to-receipt latency."""
    got = 0
    while got < count:
        frame = await recv_json(ws, timeout=10)
        if frame["job_id"] == "burst":
            latencies.append(time.time() - frame["data"]["t"])
            got += 1


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_stalled_client_is_dropped_without_slowing_the_others(stack, staff_cookie):
    pid = stack.daphne.popen.pid
    padding = "x" * DATA_BYTES
    publisher = aioredis.Redis.from_url(stack.redis.url)
    clients = [ws_connect(stack.port, staff_cookie) for _ in range(FAST_CLIENTS)]
    sockets = [await c.__aenter__() for c in clients]
    slow = None
    try:
        for ws in sockets:
            await welcomed(ws)
        for n in range(5):  # warm up: allocator and buffers at their steady size
            await publisher.publish(CHANNEL, job_update("warm", "queued"))
            for ws in sockets:
                assert (await recv_json(ws))["job_id"] == "warm", n
        slow = await asyncio.to_thread(stalled_client, stack.port, staff_cookie)
        before = rss(pid)
        mark = stack.daphne.mark()

        latencies: list[float] = []
        readers = [asyncio.create_task(reader(ws, latencies, BURST)) for ws in sockets]
        peak, done = [before], asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, peak, done))
        too_slow = asyncio.create_task(asyncio.to_thread(dropped, stack.daphne, mark, slow))
        started = time.monotonic()
        for n in range(BURST):
            data = {"n": n, "t": time.time(), "pad": padding}
            await publisher.publish(CHANNEL, job_update("burst", "processing", data))
            await asyncio.sleep(max(0.0, started + (n + 1) / RATE - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*readers), 20)
        done.set()
        await sampler
        after = rss(pid)

        line, logged_at, closed_at = await asyncio.wait_for(too_slow, 15)
        dropped_after = logged_at - started
        assert dropped_after < BURST / RATE, "expected the slow client dropped during the burst"
        assert closed_at - logged_at < 5, "expected its socket closed or reset"
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(
            f"\nslow client dropped {dropped_after:.2f}s into the burst at"
            f" {int(line.group(1))} unread bytes, its socket closed"
            f" {closed_at - logged_at:.2f}s later;"
            f" others: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms,"
            f" max {latencies[-1] * 1000:.1f} ms over {len(latencies)} receipts;"
            f" Daphne RSS before {before / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} MiB,"
            f" after {after / 2**20:.1f} MiB"
        )
        assert len(latencies) == FAST_CLIENTS * BURST
        assert p99 < P99_LIMIT, f"expected the others' p99 under {P99_LIMIT}s, got {p99:.3f}s"
        assert peak[0] - before < RSS_GROWTH_LIMIT, (
            f"expected Daphne's RSS to grow by under {RSS_GROWTH_LIMIT} bytes,"
            f" got {peak[0] - before}"
        )
        assert stack.daphne.running
    finally:
        if slow is not None:
            slow.close()
        for client in clients:
            await client.__aexit__(None, None, None)
        await publisher.aclose()
    assert os.path.exists(f"/proc/{pid}")
