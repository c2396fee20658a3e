"""The bridge: Redis pub/sub channel -> history -> channel-layer group.

:class:`Bridge` subscribes to the channel the workers PUBLISH on and works in
batches: it reads the messages already received (up to :data:`MAX_BATCH`),
validates each with :func:`jobupdates.protocol.parse_job_update`, encodes each
client frame once, records the valid ones in the
:class:`~jobupdates.history.History` in one pipeline (which gives each its
position), and ``group_send``\\ s them. It owns its connection state: every
loss of Redis is logged, then followed by a reconnect after a capped, jittered
backoff. A valid update that cannot be recorded or forwarded is retried, never
dropped. A rejected message is counted, logged (throttled) and kept as a dead
letter (:mod:`jobupdates.ingest.rejections`).

With a :class:`~jobupdates.ingest.leadership.Lease`, several bridges can run: one is
active and forwards, the others stay subscribed as hot standbys and take
over once the active one stops renewing its lease. Each keeps a ring of what it
received, and on becoming active forwards, before anything newer, exactly what
the old active bridge never recorded (:mod:`jobupdates.ingest.takeover`).

With :attr:`BridgeOptions.ingest_stream`, the active bridge also reads the
durable ingest stream (:mod:`jobupdates.ingest.durable`).

``manage.py run_bridge`` only builds a :class:`Bridge` and calls
:func:`jobupdates.ingest.stopping.run_until_signalled`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobupdates import redis_client
from jobupdates.history import History
from jobupdates.ingest.counters import BridgeStats
from jobupdates.ingest.dead_letters import DeadLetterWriter
from jobupdates.ingest.durable import DurableIngest
from jobupdates.ingest.forwarder import Forwarder, GroupSender
from jobupdates.ingest.leadership import Election, Lease, Role
from jobupdates.ingest.rejections import Rejections
from jobupdates.ingest.stopping import back_off
from jobupdates.ingest.takeover import Takeover
from jobupdates.protocol import (
    DEFAULT_STATUSES,
    InvalidJobUpdate,
    JobUpdate,
    parse_job_update,
)
from jobupdates.protocol.alignment import digest
from jobupdates.protocol.reports import BridgeState

__all__ = ["Bridge", "BridgeOptions", "BridgeState", "BridgeStats"]

logger = logging.getLogger(__name__)

MAX_BATCH = 500
"""The most messages read, then recorded and sent in one pipeline each."""
POLL_SECONDS = 0.5
"""How long one read waits for a message; bounds how late a stop request is seen."""


FLAP_SECONDS = 1.0
"""A subscription that ends sooner than this after an early reconnect gets the
whole next delay: a Redis that answers PING but drops the subscription must
not make the bridge reconnect in a tight loop."""


@dataclass(frozen=True)
class BridgeOptions:
    """What the bridge subscribes to and accepts (:func:`jobupdates.redis_client.listener`
    says how it talks to Redis)."""

    redis_url: str
    channel: str
    group: str
    statuses: tuple[str, ...] = DEFAULT_STATUSES
    max_payload_bytes: int = 1024 * 1024
    lease_interval: float = 1.0
    ingest_stream: str | None = None
    """The durable ingest stream the active bridge reads; None reads none."""
    standby_buffer_seconds: float = 30.0
    standby_buffer_messages: int = 10_000


class Bridge:
    """Forwards valid job updates from a Redis channel into a channel-layer group."""

    def __init__(
        self,
        options: BridgeOptions,
        *,
        layer: GroupSender,
        delays: Callable[[], Iterator[float]],
        history: History | None = None,
        lease: Lease | None = None,
        dead_letters: DeadLetterWriter | None = None,
    ) -> None:
        """Set up a bridge; nothing connects until :meth:`run`.

        Args:
            options: What to subscribe to and accept.
            layer: The channel layer.
            delays: Makes a fresh iterator of retry delays, in seconds.
            history: Where updates are recorded; without one they carry no position.
            lease: The lease that elects the active bridge; without one it is always active.
            dead_letters: Where the active bridge keeps rejected messages; None keeps none.
        """
        self.options = options
        self.delays = delays
        self._woke_early = False
        self.election = Election(lease, options.lease_interval) if lease else None
        self.state = BridgeState.STARTING
        self.stats = BridgeStats()
        self.stopping = asyncio.Event()
        self.rejections = Rejections(options.channel, log=logger, dead_letters=dead_letters)
        self.forwarder = Forwarder(
            layer=layer, group=options.group, history=history, delays=delays, stopping=self.stopping
        )
        self._entered = {state: asyncio.Event() for state in BridgeState}
        consumer = lease.holder if lease else f"bridge-{uuid.uuid4().hex[:12]}"
        stream = options.ingest_stream
        self.durable = DurableIngest(self, stream=stream, consumer=consumer) if stream else None
        self.takeover = Takeover(
            self,
            max_seconds=options.standby_buffer_seconds,
            max_messages=options.standby_buffer_messages,
        )
        self._pumped = asyncio.Event()  # the lease is released only once nothing is in hand

    @property
    def role(self) -> Role:
        """Whether this bridge forwards updates now (always, without a lease)."""
        return self.election.role if self.election else Role.ACTIVE

    def _set_state(self, state: BridgeState, why: str = "") -> None:
        if state is not self.state:
            logger.info("bridge %s -> %s%s", self.state, state, f": {why}" if why else "")
            self._entered[self.state].clear()
            self.state = state
            self._entered[state].set()

    def _listening_at(self, pubsub: Any) -> None:
        connection = getattr(pubsub, "connection", None)
        primary = f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"
        before = self.stats.primary
        if self.stats.listening_at(primary):
            logger.warning(
                "bridge: Redis is now %s, was %s (a failover: the sentinels named another primary)",
                primary,
                before,
            )

    async def wait_for_state(self, state: BridgeState) -> None:
        """Return once the bridge is in ``state``."""
        await self._entered[state].wait()

    async def run(self) -> None:
        """Subscribe and forward until :meth:`stop` is called; reconnect on any loss."""
        electing = asyncio.create_task(self.election.run(self._pumped)) if self.election else None
        durable = asyncio.create_task(self.durable.run()) if self.durable else None
        try:
            await self._subscribe_forever()
        finally:
            self.stopping.set()
            if durable is not None:
                await durable
            self._pumped.set()
            if electing is not None:
                await electing
            await self.rejections.aclose()
        self._set_state(BridgeState.STOPPED)

    async def _subscribe_forever(self) -> None:
        if self.election is not None:
            await self.election.decided.wait()  # know the role before the first message
        delays = self.delays()
        loop = asyncio.get_running_loop()
        subscribed_at = loop.time()
        while not self.stopping.is_set():
            self._set_state(BridgeState.CONNECTING, self.options.redis_url)
            client = redis_client.listener(self.options.redis_url)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.options.channel)
                    self.takeover.subscribed(time.time())
                    await self._settle_role()
                    as_role = "the active bridge" if self.role is Role.ACTIVE else "a standby"
                    self._listening_at(pubsub)
                    self._set_state(
                        BridgeState.SUBSCRIBED,
                        f"listening on {self.options.channel!r} at {self.stats.primary} "
                        f"as {as_role}",
                    )
                    delays = self.delays()
                    subscribed_at = loop.time()
                    await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                self.stats.reconnects += 1
                delay = next(delays)
                # Unreachable (not an error Redis answered with), and not right after an
                # early reconnect that failed again at once: then a probe may cut it short.
                lost = isinstance(exc, RedisConnectionError | RedisTimeoutError | OSError)
                flapping = self._woke_early and loop.time() - subscribed_at < FLAP_SECONDS
                sooner = ", sooner once Redis answers again" if lost and not flapping else ""
                self._set_state(
                    BridgeState.BACKING_OFF,
                    f"lost Redis ({type(exc).__name__}: {exc}); retrying in {delay:.2f}s{sooner}",
                )
                self._woke_early = await back_off(
                    self.stopping, self.options.redis_url, delay, probing=bool(sooner)
                )
            finally:
                await client.aclose()

    async def _settle_role(self) -> None:
        """Try to hold the lease now: after a reconnect it may be free (a restarted Redis
        lost it), and the first bridge back takes it before it reads a message."""
        if self.election is not None and not self.stopping.is_set():
            await self.election.check()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self.stopping.set()

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        while not self.stopping.is_set():
            payloads = await self._read_batch(pubsub)
            if payloads:
                await self.handle_many(payloads)
            elif self.takeover.pending and self.role is Role.ACTIVE:
                await self.takeover.run()

    @staticmethod
    async def _read_batch(pubsub: aioredis.client.PubSub) -> list[bytes]:
        """Wait for a message, then take those already received too, up to MAX_BATCH
        (under load, batches grow; redis-py resumes a read a zero timeout interrupted)."""
        message = await pubsub.get_message(timeout=POLL_SECONDS)
        payloads: list[bytes] = []
        while message is not None:
            if message["type"] == "message":
                payloads.append(message["data"])
                if len(payloads) >= MAX_BATCH:
                    break
            message = await pubsub.get_message(timeout=0)
        return payloads

    async def handle_many(self, payloads: list[bytes]) -> int:
        """Validate messages and forward the valid ones, in order; return how many were valid."""
        received_at = time.time()
        self.stats.received += len(payloads)
        self.stats.last_message_at = received_at
        batch: list[tuple[JobUpdate, str]] = []
        digests: list[str] = []
        for payload in payloads:
            try:
                update = parse_job_update(
                    payload,
                    statuses=self.options.statuses,
                    max_bytes=self.options.max_payload_bytes,
                )
                batch.append((update, update.to_frame()))
                digests.append(digest(payload))
            except InvalidJobUpdate as exc:
                self.stats.rejected[exc.reason] += 1
                keep = self.role is Role.ACTIVE  # one dead letter per message, not one per bridge
                await self.rejections.reject(exc, payload, received_at, keep=keep)
        if not batch:
            return 0
        if self.role is not Role.ACTIVE and self.election and self.election.holder_unknown:
            await self._settle_role()  # Redis is back and may have lost the lease: take it now
        if self.role is not Role.ACTIVE:
            self.takeover.buffer(batch, digests, received_at)
            self.stats.skipped_as_standby += len(batch)
            logger.debug("standby: leaving %d update(s) to the active bridge", len(batch))
            return len(batch)
        if self.takeover.pending:  # just became active: align first, then these in order
            self.takeover.buffer(batch, digests, received_at)
            await self.takeover.run()
            return len(batch)
        if await self.forwarder.forward(batch, received_at, digests=digests):
            self.takeover.recorded(digests, received_at)
            self.stats.forwarded += len(batch)
            for update, _ in batch:
                self.stats.forwarded_by_status[update.status] += 1
        return len(batch)
