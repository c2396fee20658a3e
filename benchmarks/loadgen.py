"""The load generator: picows WebSocket clients on uvloop, in a process of their own.

``python -m benchmarks.loadgen`` reads one JSON command per line on stdin and
answers each with one JSON line on stdout (see :class:`Generator` for the
commands). The harness pins it to its own core. For every ``job_update``
frame a connection receives, it records the receipt time on the monotonic
clock; the publish time, on the same clock, travels inside ``data``, so
latency is receipt minus publish. Frames are identical across connections,
so each distinct payload is decoded once and then looked up: a compressed one
too, when the server compresses each message on its own
(``server_no_context_takeover``); msgpack in binary frames is decoded as such.

Per phase it also counts the bytes: the kernel's TCP payload bytes received
on every connection's socket (``TCP_INFO``, :func:`benchmarks.wire.tcp_bytes_received`)
and the WebSocket payload bytes of the data frames as they came.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from typing import Any

import redis.asyncio as aioredis
import uvloop
from picows import WSTransport

from benchmarks import payloads
from benchmarks.loadgen_connect import Connection, connect_all
from benchmarks.wire import decode, tcp_bytes_received

logger = logging.getLogger(__name__)

WINDOW_STALL_SECONDS = 2.0
"""How long the windowed publisher waits for a message every connection should have."""


class Generator:
    """Connections, receipt records and (in one process) the publisher.

    Commands: ``connect``, ``reset``, ``publish``, ``drain``, ``close``, ``exit``.
    """

    def __init__(self) -> None:
        self.transports: list[WSTransport] = []
        self.wire_start: list[tuple[WSTransport, int | None]] = []
        self.disconnects = 0
        self.next_seq = 0
        self._forget()

    async def reset(self, latencies: bool = False) -> dict[str, Any]:
        """Forget every receipt: the start of a phase; keep each latency if ``latencies``."""
        self._forget()
        self.record_latencies = latencies
        self.connections = len(self.transports)
        self.wire_start = [(t, _received(t)) for t in self.transports]
        return {"reset": True}

    def _forget(self) -> None:
        self.record_latencies = False
        self.connections = len(self.transports)
        self.seq_of: dict[bytes, int] = {}
        self.published_at: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self.last_receipt: dict[int, float] = {}
        self.latencies: list[float] = []
        self.message_bytes: dict[int, int] = {}
        self.completed = 0
        self.other_frames = 0
        self.payload_bytes = 0
        self.compressed_frames = 0
        self.binary_frames = 0
        self.wire_start = []
        self.progress = asyncio.Event()

    def on_message(
        self, connection: Connection, payload: bytes, binary: bool, compressed: bool, now: float
    ) -> None:
        """Count one data frame; decode it only if no connection had the same bytes yet."""
        self.payload_bytes += len(payload)
        self.compressed_frames += compressed
        self.binary_frames += binary
        inflater = connection.inflater
        if compressed and inflater is not None and not inflater.shared:
            payload, compressed = inflater.inflate(payload), False  # window carried over
        seq = self.seq_of.get(payload)
        if seq is None:
            if compressed and inflater is None:
                self.other_frames += 1  # RSV1 without permessage-deflate: a server bug
                return
            text = inflater.inflate(payload) if compressed and inflater else payload
            message = decode(text, binary)
            kind = message.get("type")
            if kind == "welcome" and not connection.welcomed.done():
                connection.welcomed.set_result(now)
                return
            if kind != "job_update":
                self.other_frames += 1
                return
            seq = message["data"]["seq"]
            self.seq_of[payload] = seq
            if seq not in self.counts:
                self.published_at[seq] = message["data"]["t"]
                self.counts[seq] = 0
                self.last_receipt[seq] = 0.0
                self.message_bytes[seq] = len(text)
        count = self.counts[seq] + 1
        self.counts[seq] = count
        if now > self.last_receipt[seq]:
            self.last_receipt[seq] = now
        if self.record_latencies:
            self.latencies.append(now - self.published_at[seq])
        if count == self.connections:
            self.completed += 1
            self.progress.set()

    async def connect(
        self,
        url: str,
        origin: str,
        cookie: str,
        count: int,
        concurrency: int,
        cookies: list[str] | None = None,
        handshake_timeout: float = 5.0,
        welcome_timeout: float = 30.0,
        busy_attempts: int = 1,
        offer: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Open ``count`` connections, ``concurrency`` handshakes at a time; await welcomes.

        Every connection sends the headers of ``offer`` (:attr:`benchmarks.wire.Offer.headers`).
        Connection i sends ``cookies[i]`` if ``cookies`` is given, else ``cookie``;
        one refused as busy (close 4503) tries up to ``busy_attempts`` times in
        all. Reports the monotonic times of the first connect attempt and the
        last welcome, which compare across generator processes, and the busy
        refusals (:func:`benchmarks.loadgen_connect.connect_all`).
        """
        if cookies and len(cookies) < count:
            raise ValueError(f"expected {count} cookies, got {len(cookies)}")
        common = {"Origin": origin, **(offer or {})}
        if cookies:
            headers = [{**common, "Cookie": c} for c in cookies[:count]]
        else:
            headers = [{**common, **({"Cookie": cookie} if cookie else {})}] * count
        return await connect_all(
            self, url, headers, concurrency, (handshake_timeout, welcome_timeout), busy_attempts
        )

    async def publish(
        self,
        redis_url: str,
        channel: str,
        *,
        count: int,
        duration: float,
        window: int,
        rate: float,
        pad: str,
        payload: str = "typical",
    ) -> dict[str, Any]:
        """Publish updates: paced at ``rate``/s if ``rate``, else ``window`` in flight.

        Stops after ``count`` messages or ``duration`` seconds, whichever is first.
        ``payload``: the kind of update (:mod:`benchmarks.payloads`).
        """
        client = aioredis.Redis.from_url(redis_url, socket_timeout=30)
        first = self.next_seq
        times: list[float] = []
        stalls = 0
        started = time.monotonic()
        try:
            while len(times) < count and time.monotonic() - started < duration:
                if rate:
                    delay = started + len(times) / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)  # pacing
                else:
                    while len(times) - self.completed - stalls >= window:
                        self.progress.clear()
                        try:
                            await asyncio.wait_for(self.progress.wait(), WINDOW_STALL_SECONDS)
                        except TimeoutError:
                            stalls += 1
                seq = self.next_seq
                self.next_seq += 1
                now = time.monotonic()
                update = payloads.update(payload, seq, now, pad)
                times.append(now)
                await client.publish(channel, update)
        finally:
            await client.aclose()
        return {"first": first, "published_at": times, "stalls": stalls}

    async def drain(
        self, first: int, last: int, idle: float, limit: float, latencies: bool
    ) -> dict[str, Any]:
        """Wait until every connection has seqs ``first..last``; report.

        Gives up when nothing arrived for ``idle`` seconds or after ``limit`` seconds.
        """
        wanted = last - first + 1
        deadline = time.monotonic() + limit
        while self.completed < wanted and time.monotonic() < deadline:
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), min(idle, deadline - time.monotonic()))
            except TimeoutError:
                if self.completed < wanted and not self._progressed_recently(idle):
                    break
        connections = len(self.transports)
        counts = [self.counts.get(seq, 0) for seq in range(first, last + 1)]
        sizes = [self.message_bytes[seq] for seq in range(first, last + 1) if seq in self.counts]
        return {
            "connections": connections,
            "received": sum(counts),
            "lost": sum(max(0, connections - c) for c in counts),
            "duplicates": sum(max(0, c - connections) for c in counts),
            "last_receipt": [self.last_receipt.get(seq) for seq in range(first, last + 1)],
            "latencies_us": [round(x * 1e6) for x in self.latencies] if latencies else [],
            "other_frames": self.other_frames,
            "disconnects": self.disconnects,
            "wire_bytes": self._wire_bytes(),
            "payload_bytes": self.payload_bytes,
            "compressed_frames": self.compressed_frames,
            "binary_frames": self.binary_frames,
            "message_bytes_total": sum(sizes),
            "messages_seen": len(sizes),
        }

    def _wire_bytes(self) -> int | None:
        """TCP payload bytes received since :meth:`reset` on the connections open then."""
        total = 0
        for transport, start in self.wire_start:
            now = _received(transport)
            if start is None or now is None:
                return None  # a socket went or could not be read: no exact figure
            total += now - start
        return total

    def _progressed_recently(self, idle: float) -> bool:
        newest = max(self.last_receipt.values(), default=0.0)
        return time.monotonic() - newest < idle

    async def close(self) -> dict[str, Any]:
        """Close every connection and wait for them to go."""
        for transport in self.transports:
            transport.send_close()
            transport.disconnect()
        if self.transports:  # asyncio.wait refuses an empty list
            waits = [asyncio.ensure_future(t.wait_disconnected()) for t in self.transports]
            await asyncio.wait(waits, timeout=30)
        closed = len(self.transports)
        self.transports.clear()
        return {"closed": closed}


def _received(transport: WSTransport) -> int | None:
    """The TCP payload bytes ``transport``'s socket received so far; None if it is gone."""
    sock = transport.underlying_transport.get_extra_info("socket")
    try:
        return None if sock is None else tcp_bytes_received(sock)
    except OSError:
        return None


async def serve_commands() -> None:
    """Answer the harness's commands, one JSON line each way, until ``exit``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    generator = Generator()
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        try:
            reply = await getattr(generator, name)(**command)
        except Exception as exc:  # the harness shows the error and stops the run
            logger.exception("command %s failed", name)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> None:
    """Raise the fd limit to its maximum, then serve commands on uvloop."""
    logging.basicConfig(level=logging.WARNING, format="loadgen %(levelname)s %(message)s")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve_commands())


if __name__ == "__main__":
    main()
