"""Durable ingest: the active bridge reads a Redis Stream with a consumer group.

Workers that can, ``XADD <JOBUPDATES_INGEST_STREAM> * payload '<JSON>'``
instead of PUBLISHing (:func:`jobupdates.ingest.publish.publish_job_update`).
Only the active bridge (the lease holder) reads the stream, as consumer
:attr:`DurableIngest.consumer` of the group :data:`GROUP`:

* The group is created at ``0`` with ``MKSTREAM`` the first time, so the
  entries added before any bridge ever ran are forwarded too.
* Each entry is validated with the bridge's own parser (a rejection, or an
  entry without a ``payload`` field, goes the bridge's rejection path and is
  ACKed, never redelivered), recorded in the history *with its entry ID*
  and sent through the bridge's :class:`~jobupdates.ingest.forwarder.Forwarder`,
  then ``XACK``\\ ed.
* Whenever a bridge becomes active (start, takeover, reconnect), before it
  reads new entries, and then every :data:`RECOVER_SECONDS` between reads, it
  takes over every pending entry (``XAUTOCLAIM``, min-idle 0: a dead bridge's,
  or a deposed one's that read entries it could no longer record), skips and
  ACKs those whose IDs the history already holds (recorded, then the bridge
  died before its ``XACK``) and forwards the others in order. So an update
  goes into the history once, across a crash or a freeze.

``XREADGROUP ... BLOCK`` waits :data:`BLOCK_SECONDS`, on a client whose socket
timeout is longer (:func:`jobupdates.redis_client.stream_reader`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from jobupdates import redis_client
from jobupdates.history import History
from jobupdates.ingest.forwarder import Batch, Outcome
from jobupdates.ingest.intake import Intake
from jobupdates.ingest.stopping import pause
from jobupdates.ingest.takeover import MAX_BATCH
from jobupdates.protocol import InvalidJobUpdate, JobUpdate, RejectReason

__all__ = ["BLOCK_SECONDS", "GROUP", "RECOVER_SECONDS", "DurableIngest", "DurableStats"]

logger = logging.getLogger(__name__)

GROUP = "jobupdates.bridges"
"""The consumer group of the bridges on the ingest stream."""
BLOCK_SECONDS = 2.0
"""How long one XREADGROUP waits for an entry."""
ROLE_POLL_SECONDS = 0.1
"""How often a standby looks whether it became active (no I/O)."""
RECOVER_SECONDS = 2.0
"""How often the active bridge claims the entries left pending between its reads."""

Entry = tuple[str, dict[bytes, bytes]]


@dataclass
class DurableStats:
    """Counters of the durable input since the bridge started."""

    read: int = 0
    forwarded: int = 0
    rejected: int = 0
    acked: int = 0
    already_recorded: int = 0
    """Pending entries found in the history on takeover: ACKed, not forwarded again."""
    recoveries: int = 0


class DurableIngest:
    """Reads the ingest stream for one bridge, while it is the active one."""

    def __init__(
        self,
        intake: Intake,
        history: History | None,
        *,
        redis_url: str,
        stream: str,
        consumer: str,
        active: Callable[[], bool],
        stopping: asyncio.Event,
        delays: Callable[[], Iterator[float]],
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        """Args:
        intake: Validates, records and sends (the bridge's, shared with its other inputs).
        history: Where recorded entries are looked up on a recovery.
        redis_url: The Redis holding the stream.
        stream: The ingest stream's key (``JOBUPDATES_INGEST_STREAM``).
        consumer: This bridge's name in the group (its lease holder name).
        active: Whether the bridge is the active one now.
        stopping: Set when the bridge stops.
        delays: Retry delays after a Redis failure.
        block_seconds: How long one XREADGROUP blocks.
        """
        self.intake = intake
        self.history = history
        self.redis_url = redis_url
        self.stream = stream
        self.consumer = consumer
        self.active = active
        self.stopping = stopping
        self.delays = delays
        self.block_seconds = block_seconds
        self.stats = DurableStats()
        self.reading = asyncio.Event()
        """Set while this bridge reads the stream (active, recovered, group in place)."""
        self.idle_reads = 0
        """XREADGROUPs that blocked their whole time and returned nothing."""
        self.idled = asyncio.Event()
        """Set after each such XREADGROUP (cleared by whoever waits on it)."""

    async def run(self) -> None:
        """Read while this bridge is active, until the bridge stops."""
        stopping = self.stopping
        delays = self.delays()
        while not stopping.is_set():
            if not self.active():
                await pause(stopping, ROLE_POLL_SECONDS)
                continue
            client = redis_client.stream_reader(self.redis_url, self.block_seconds)
            try:
                await self._create_group(client)
                await self.recover(client)
                self.reading.set()
                delays = self.delays()
                await self._read_while_active(client)
            except (RedisError, OSError) as exc:
                delay = next(delays)
                logger.warning(
                    "durable ingest: lost Redis (%s: %s); retrying in %.2fs",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await pause(stopping, delay)
            finally:
                self.reading.clear()
                await client.aclose()

    async def _create_group(self, client: aioredis.Redis) -> None:
        try:
            await client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
            logger.info("durable ingest: created group %r on %r at 0", GROUP, self.stream)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def recover(self, client: aioredis.Redis) -> None:
        """Take over every pending entry; ACK those already recorded, forward the rest."""
        pending: list[Entry] = []
        start = "0-0"
        while True:
            reply = await client.xautoclaim(
                self.stream, GROUP, self.consumer, 0, start_id=start, count=MAX_BATCH
            )
            start = _text(reply[0])
            pending.extend((_text(entry_id), fields or {}) for entry_id, fields in reply[1])
            if start == "0-0":
                break
        if not pending:
            return
        self.stats.recoveries += 1
        rest = await self._unrecorded(client, pending)
        logger.info(
            "durable ingest: %d pending entr(ies) taken over: %d already recorded, %d to forward",
            len(pending),
            len(pending) - len(rest),
            len(rest),
        )
        for offset in range(0, len(rest), MAX_BATCH):
            if not await self.handle(client, rest[offset : offset + MAX_BATCH]):
                return

    async def _read_while_active(self, client: aioredis.Redis) -> None:
        stopping = self.stopping
        block_ms = int(self.block_seconds * 1000)
        loop = asyncio.get_running_loop()
        recovered_at = loop.time()
        while not stopping.is_set() and self.active():
            if loop.time() - recovered_at >= RECOVER_SECONDS:
                await self.recover(client)
                recovered_at = loop.time()
            read = asyncio.ensure_future(
                client.xreadgroup(
                    GROUP, self.consumer, {self.stream: ">"}, count=MAX_BATCH, block=block_ms
                )
            )
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({read, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not read.done():  # stopping: what was read stays pending for the next bridge
                read.cancel()
                return
            reply: Any = read.result()
            entries = [
                (_text(entry_id), fields or {})
                for _, stream in reply or []
                for entry_id, fields in stream
            ]
            if not entries:
                self.idle_reads += 1
                self.idled.set()
                continue
            if not self.active():
                return  # deposed while reading: the entries stay pending for the active bridge
            if not await self.handle(client, await self.with_older(client, entries)):
                return

    async def with_older(self, client: aioredis.Redis, entries: list[Entry]) -> list[Entry]:
        """``entries`` (just read), after the older ones another consumer read and left
        pending: a deposed bridge whose blocked read was answered after its successor
        took over, or that read and could no longer record. Taken over first, so that
        the stream's order is the history's; those it did record are ACKed."""
        first = entries[0][0]
        rows: Any = await client.xpending_range(
            self.stream, GROUP, min="-", max=f"({first}", count=MAX_BATCH
        )
        ids: list[Any] = [
            row["message_id"] for row in rows if _text(row["consumer"]) != self.consumer
        ]
        if not ids:
            return entries
        claimed: Any = await client.xclaim(self.stream, GROUP, self.consumer, 0, ids)
        older = await self._unrecorded(
            client, [(_text(entry_id), fields or {}) for entry_id, fields in claimed]
        )
        logger.info(
            "durable ingest: %d older entr(ies) another bridge read and did not record come first",
            len(older),
        )
        return sorted([*older, *entries], key=lambda entry: _order(entry[0]))

    async def handle(self, client: aioredis.Redis, entries: list[Entry]) -> bool:
        """Validate, record, send and ACK entries in order; False if not all were
        recorded (stopped, or deposed: they stay pending for the active bridge)."""
        intake = self.intake
        received_at = intake.received(len(entries))
        self.stats.read += len(entries)
        batch: list[tuple[JobUpdate, str]] = []
        ids: list[str] = []
        for entry_id, fields in entries:
            payload = fields.get(b"payload")
            if payload is None:
                missing = InvalidJobUpdate(
                    RejectReason.MISSING_PAYLOAD,
                    f"expected a 'payload' field in entry {entry_id} of {self.stream!r}; "
                    f"got fields {sorted(_text(name) for name in fields)}",
                )
                self.stats.rejected += 1
                await intake.reject(missing, b"", received_at, keep=True)
                continue
            accepted = await intake.accept(payload, received_at, keep=True)
            if accepted is None:
                self.stats.rejected += 1
                continue
            batch.append(accepted)
            ids.append(entry_id)
        if batch:
            outcome = await intake.forward(Batch(batch, received_at, ingest_ids=ids))
            if outcome is not Outcome.SENT:
                return False
            self.stats.forwarded += len(batch)
        await self._ack(client, [entry_id for entry_id, _ in entries])
        return True

    async def _unrecorded(self, client: aioredis.Redis, entries: list[Entry]) -> list[Entry]:
        """``entries`` taken over from another consumer, oldest first, less those the
        history already holds (recorded, then their bridge stopped before its XACK),
        which are ACKed."""
        entries = sorted(entries, key=lambda entry: _order(entry[0]))
        history = self.history
        recorded = await history.ingested_since(entries[0][0]) if history is not None else set()
        done = [entry_id for entry_id, _ in entries if entry_id in recorded]
        if done:
            self.stats.already_recorded += len(done)
            await self._ack(client, done)
        return [entry for entry in entries if entry[0] not in recorded]

    async def _ack(self, client: aioredis.Redis, ids: list[str]) -> None:
        await client.xack(self.stream, GROUP, *ids)
        self.stats.acked += len(ids)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _order(entry_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.split("-"))
