"""The measurements made on one running target: idle memory, throughput, latency, ingest.

Each phase takes a :class:`Sample` before and after, so CPU time is billed to
the processes that spent it (server + bridge, Redis, generator) and whatever
else ran on the machine meanwhile shows up as foreign CPU, a noise flag. The
fan-out phases also report the bytes each delivery took on the wire, as the
clients' sockets counted them (:mod:`benchmarks.loadgen`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from websockets.asyncio.client import connect as websockets_connect

from benchmarks import payloads
from benchmarks.loadgen_client import GeneratorPool
from benchmarks.sysstats import MachineCpu, cpu_seconds, listen_overflows, machine_cpu, rss_bytes
from benchmarks.targets import Stack
from benchmarks.wire import Negotiated, Offer, decode
from harness.updates import CHANNEL, STREAM, job_update

logger = logging.getLogger(__name__)

GROUP_PATTERN = "*jobupdates.all*"
"""The channel-layer group's Redis channel, for layers that PUBLISH per group."""
FOREIGN_CPU_LIMIT = 0.10
"""Foreign CPU above this share of one core, over a phase, flags the phase as noisy."""
GENERATOR_CPU_LIMIT = 0.70
DRAIN_IDLE_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 180.0


@dataclass(frozen=True)
class Sample:
    """CPU seconds of every party, and the clock, at one moment."""

    wall: float
    server: float
    bridge: float
    redis: float
    generator: float
    harness: float
    machine: MachineCpu

    @classmethod
    def take(cls, stack: Stack, pool: GeneratorPool | None) -> Sample:
        return cls(
            time.monotonic(),
            cpu_seconds(stack.server_pids),
            cpu_seconds(stack.bridge_pids),
            cpu_seconds(stack.redis_pids),
            cpu_seconds(pool.pids if pool else []),
            cpu_seconds([os.getpid()]),
            machine_cpu(),
        )

    def since(self, before: Sample) -> dict[str, Any]:
        """Return the CPU used and the noise flags between ``before`` and now."""
        wall = self.wall - before.wall
        used = {
            name: getattr(self, name) - getattr(before, name)
            for name in ("server", "bridge", "redis", "generator", "harness")
        }
        machine = self.machine - before.machine
        foreign = max(0.0, machine.busy - sum(used.values()))
        flags = []
        if foreign > FOREIGN_CPU_LIMIT * wall:
            flags.append(f"foreign CPU {foreign / wall:.0%} of a core")
        if used["generator"] > GENERATOR_CPU_LIMIT * wall:
            flags.append(f"generator at {used['generator'] / wall:.0%} of its core")
        return {
            "seconds": wall,
            "cpu_seconds": used,
            "foreign_cpu_seconds": foreign,
            "softirq_seconds": machine.softirq,
            "core_busy_share": [round(busy / wall, 3) for busy in machine.per_core_busy],
            "generator_core_share": used["generator"] / wall,
            "flags": flags,
        }


def wait_for_quiet(limit: float, window: float = 1.0) -> dict[str, Any]:
    """Wait (up to ``limit`` s, 0: one look) for a ``window`` with under 10% of a core busy.

    Run between phases, when the target and the generator are idle, so what
    is seen is other people's work on this shared machine.
    """
    started = time.monotonic()
    while True:
        before = machine_cpu()
        time.sleep(window)  # sampling window: there is no event to wait for
        busy = (machine_cpu() - before).busy / window
        waited = time.monotonic() - started
        if busy < FOREIGN_CPU_LIMIT or waited >= limit:
            return {"waited_seconds": round(waited, 1), "busy_cores": round(busy, 2)}


def warm_up(stack: Stack, pad: str, payload: str = "typical") -> None:
    """Take one client through connect, one update and close, so lazy setup is done.

    The client offers what the target's clients offer (``stack.offer``), so the
    server's compressing or msgpack path is warm too.
    """

    async def one() -> None:
        async with websockets_connect(
            stack.url,
            origin=stack.origin,  # type: ignore[arg-type]  # a str is what it sends
            additional_headers={"Cookie": stack.cookie} if stack.cookie else None,
            compression="deflate" if stack.offer.deflate else None,
            subprotocols=[stack.offer.subprotocol] if stack.offer.subprotocol else None,  # type: ignore[list-item]
            open_timeout=10,
        ) as websocket:
            welcome = await _receive(websocket)
            assert welcome["type"] == "welcome", welcome
            client = redis.asyncio.Redis.from_url(stack.redis.url)
            data = payloads.update_data(payload, -1, time.monotonic(), pad)
            async with client:
                await client.publish(CHANNEL, job_update("warm-up", "queued", data))
            frame = await _receive(websocket)
            assert frame["job_id"] == "warm-up", frame

    asyncio.run(one())


async def _receive(websocket: Any) -> dict[str, Any]:
    """Receive and decode one frame: JSON text or msgpack binary."""
    frame = await asyncio.wait_for(websocket.recv(), 30)
    return decode(frame, binary=True) if isinstance(frame, bytes) else decode(frame.encode(), False)


def connect(
    stack: Stack,
    pool: GeneratorPool,
    offer: Offer | None = None,
    agreed: Negotiated | None = None,
) -> dict[str, Any]:
    """Open every connection; return the server RSS growth per connection, and flags.

    The clients offer ``offer`` (default: the target's), and a flag is raised
    for any connection that did not negotiate ``agreed`` (default: the target's).
    Client i sends ``stack.cookies[i]`` if the target has them, else ``stack.cookie``.
    """
    offer = stack.offer if offer is None else offer
    agreed = stack.agreed if agreed is None else agreed
    overflows = listen_overflows()
    before = rss_bytes(stack.server_pids)
    cookies = stack.cookies or None  # one session per client, as browsers have
    reports = pool.connect(
        stack.url, stack.origin, stack.cookie, cookies=cookies, offer=offer.headers
    )
    after = rss_bytes(stack.server_pids)
    connected = sum(r["connected"] for r in reports)
    overflowed = listen_overflows() - overflows
    negotiated: dict[str, int] = {}
    for report in reports:
        for label, count in report.get("negotiated", {}).items():
            negotiated[label] = negotiated.get(label, 0) + count
    result = {
        "connected": connected,
        "failed": sum(r["failed"] for r in reports),
        "errors": [e for r in reports for e in r["errors"]][:5],
        "seconds": max(r["seconds"] for r in reports),
        "server_rss_before": before,
        "server_rss_after": after,
        "idle_bytes_per_connection": (after - before) / connected if connected else None,
        "listen_overflows": overflowed,
        "offered": offer.describe(),
        "negotiated": negotiated,
        "flags": [f"{overflowed} listen overflows"] if overflowed else [],
    }
    others = {label: n for label, n in negotiated.items() if label != agreed.label}
    if others:
        result["flags"].append(
            f"expected every connection to negotiate {agreed.label!r}"
            f" (offered: {offer.describe()}), got {others}"
        )
    if result["failed"]:
        result["flags"].append(f"{result['failed']} connections failed: {result['errors']}")
    return result


def fan_out(
    stack: Stack, pool: GeneratorPool, *, latencies: bool, quiet_wait: float, **publish: Any
) -> dict[str, Any]:
    """Publish (see :meth:`benchmarks.loadgen.Generator.publish`), wait for delivery, report."""
    pool.all({"cmd": "reset", "latencies": latencies}, timeout=30)
    quiet = wait_for_quiet(quiet_wait)
    before = Sample.take(stack, pool)
    sent = pool.publish(timeout=600, redis_url=stack.redis.url, channel=CHANNEL, **publish)
    first, published_at = sent["first"], sent["published_at"]
    last = first + len(published_at) - 1
    drained = pool.all(
        {
            "cmd": "drain",
            "first": first,
            "last": last,
            "idle": DRAIN_IDLE_SECONDS,
            "limit": DRAIN_TIMEOUT_SECONDS,
            "latencies": latencies,
        },
        timeout=DRAIN_TIMEOUT_SECONDS + 60,
    )
    usage = Sample.take(stack, pool).since(before)
    connections = sum(d["connections"] for d in drained)
    delivered = sum(d["received"] for d in drained)
    server_cpu = usage["cpu_seconds"]["server"] + usage["cpu_seconds"]["bridge"]
    wire = [d["wire_bytes"] for d in drained]
    wire_bytes = None if None in wire else sum(wire)
    seen = sum(d["messages_seen"] for d in drained)
    result: dict[str, Any] = {
        "messages": len(published_at),
        "connections": connections,
        "expected": len(published_at) * connections,
        "delivered": delivered,
        "lost": sum(d["lost"] for d in drained),
        "duplicates": sum(d["duplicates"] for d in drained),
        "window_stalls": sent["stalls"],
        "deliveries_per_second": delivered / usage["seconds"],
        "server_cpu_us_per_delivery": server_cpu / delivered * 1e6 if delivered else None,
        "redis_cpu_us_per_delivery": (
            usage["cpu_seconds"]["redis"] / delivered * 1e6 if delivered else None
        ),
        "wire_bytes": wire_bytes,
        "wire_bytes_per_delivery": (
            wire_bytes / delivered if delivered and wire_bytes is not None else None
        ),
        "payload_bytes_per_delivery": (
            sum(d["payload_bytes"] for d in drained) / delivered if delivered else None
        ),
        "message_bytes": sum(d["message_bytes_total"] for d in drained) / seen if seen else None,
        "compressed_frames": sum(d["compressed_frames"] for d in drained),
        "binary_frames": sum(d["binary_frames"] for d in drained),
        "usage": usage,
        "quiet_before": quiet,
        "flags": list(usage["flags"]),
    }
    if latencies:
        result.update(_latencies(published_at, drained))
    return result


def _latencies(published_at: list[float], drained: list[dict[str, Any]]) -> dict[str, Any]:
    per_delivery = sorted(x for d in drained for x in d["latencies_us"])
    all_delivered = []
    for index, published in enumerate(published_at):
        receipts = [d["last_receipt"][index] for d in drained]
        if all(receipts):
            all_delivered.append(round((max(receipts) - published) * 1e6))
    all_delivered.sort()
    return {
        "delivery_latency_us": _percentiles(per_delivery),
        "all_delivered_latency_us": _percentiles(all_delivered),
    }


def _percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": values[len(values) // 2],
        "p99": values[min(len(values) - 1, (len(values) * 99) // 100)],
        "max": values[-1],
        "n": len(values),
    }


def ingest(
    stack: Stack,
    messages: int,
    pad: str,
    quiet_wait: float,
    *,
    durable: bool = False,
    payload: str = "pad",
) -> dict[str, Any]:
    """Publish ``messages`` as fast as possible with no client; measure what the bridge forwards.

    With ``durable``, XADD them to the ingest stream instead (durable ingest:
    the bridge reads, records, sends and ACKs). The forward rate is counted on
    the group's Redis channel (layers that PUBLISH per group, as the pub/sub
    layer does); the bridge's CPU per message gives the rate it could sustain
    on one core whichever layer it uses.
    """
    counter = _GroupCounter(stack.redis.url)
    client = redis.Redis.from_url(stack.redis.url)
    quiet = wait_for_quiet(quiet_wait)
    before = Sample.take(stack, None)
    try:
        for start in range(0, messages, 1000):
            pipe = client.pipeline(transaction=False)
            for seq in range(start, min(messages, start + 1000)):
                data = payloads.update_data(payload, seq, time.monotonic(), pad)
                update = job_update(f"i-{seq}", "queued", data)
                if durable:
                    pipe.xadd(STREAM, {"payload": update})
                else:
                    pipe.publish(CHANNEL, update)
            pipe.execute()
        published = time.monotonic()
        counter.wait(messages, idle=DRAIN_IDLE_SECONDS)
    finally:
        client.close()
        counter.stop()
    usage = Sample.take(stack, None).since(before)
    bridge_us = usage["cpu_seconds"]["bridge"] / messages * 1e6
    forwarded_seconds = (counter.last - before.wall) if counter.count else None
    return {
        "messages": messages,
        "publish_seconds": published - before.wall,
        "forwarded_seen": counter.count,
        "forwarded_per_second": counter.count / forwarded_seconds if forwarded_seconds else None,
        "bridge_cpu_us_per_message": bridge_us,
        "bridge_cpu_bound_per_second": 1e6 / bridge_us if bridge_us else None,
        "usage": usage,
        "quiet_before": quiet,
        "flags": list(usage["flags"]),
    }


class _GroupCounter:
    """Counts messages on the group's Redis channel(s), in a thread."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=30)
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(GROUP_PATTERN)
        confirmed = self.pubsub.get_message(timeout=10.0)
        if confirmed is None or confirmed["type"] != "psubscribe":
            raise RuntimeError(f"expected a psubscribe confirmation, got {confirmed!r}")
        self.count = 0
        self.last = 0.0
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._count, daemon=True)
        self.thread.start()

    def _count(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None and message["type"] == "pmessage":
                with self.changed:
                    self.count += 1
                    self.last = time.monotonic()
                    self.changed.notify_all()

    def wait(self, count: int, idle: float) -> None:
        """Return once ``count`` were seen, or nothing new came for ``idle`` seconds."""
        with self.changed:
            while self.count < count:
                seen = self.count
                self.changed.wait(idle)
                if self.count == seen:
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.pubsub.close()
        self.client.close()
