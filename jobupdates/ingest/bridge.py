"""The bridge: Redis pub/sub channel -> history -> channel-layer group.

:class:`Bridge` subscribes to the channel the workers PUBLISH on and works in
batches: it reads the messages already received (up to :data:`MAX_BATCH`),
validates each once, and hands the valid ones to its
:class:`~jobupdates.ingest.intake.Intake`, which records them in the
:class:`~jobupdates.history.History` (which gives each its position) and
``group_send``\\ s them, one batch at a time for every input. It owns its
connection state: every loss of Redis is logged, then followed by a reconnect
after a capped, jittered backoff. A valid update that cannot be recorded or
forwarded is retried, never dropped. A rejected message is counted, logged
(throttled) and kept as a dead letter (:mod:`jobupdates.ingest.rejections`).

With a :class:`~jobupdates.ingest.leadership.Lease`, several bridges can run: one is
active and forwards, the others stay subscribed as hot standbys and take
over once the active one stops renewing its lease. Each keeps a ring of what it
received, and on becoming active forwards, before anything newer, exactly what
the old active bridge never recorded (:mod:`jobupdates.ingest.takeover`). A
bridge the history refuses (it lost the lease while frozen) keeps what it held
in its ring and becomes a standby. Each new subscription is a new *segment*
of its ring, except the one a holder makes first after a Redis restart
(:meth:`Election.wait_to_subscribe`): nothing could reach another bridge between.

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
from jobupdates.ingest.durable import BLOCK_SECONDS, DurableIngest
from jobupdates.ingest.forwarder import Batch, Forwarder, GroupSender, Outcome
from jobupdates.ingest.intake import Intake
from jobupdates.ingest.leadership import Election, Lease, Role
from jobupdates.ingest.rejections import Rejections
from jobupdates.ingest.stopping import back_off
from jobupdates.ingest.takeover import MAX_BATCH, Takeover
from jobupdates.protocol import DEFAULT_STATUSES, JobUpdate
from jobupdates.protocol.alignment import digest
from jobupdates.protocol.reports import BridgeState

__all__ = ["Bridge", "BridgeOptions", "BridgeState", "BridgeStats"]

logger = logging.getLogger(__name__)

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
    durable_block_seconds: float = BLOCK_SECONDS
    """How long one read of the durable ingest stream waits."""


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
        self._in_hand = False
        self.segment = 0
        """The current subscription's number: a new one starts a new ring."""
        self.since_ms: int | None = None
        """When the current subscription began, by Redis's clock (from the lease)."""
        self._run_id: str | None = None
        self._aligned: int | None = None
        """The token of the lease this bridge last aligned its ring for."""
        self.aligned = asyncio.Event()
        """Set once this bridge has aligned its ring for a lease it took (see :meth:`align`)."""
        self.election = Election(lease, options.lease_interval, self._drained) if lease else None
        self.state = BridgeState.STARTING
        self.stats = BridgeStats()
        self.stopping = asyncio.Event()
        name = lease.holder if lease else f"bridge-{uuid.uuid4().hex[:12]}"
        self.forwarder = Forwarder(
            layer=layer,
            group=options.group,
            history=history,
            delays=delays,
            stopping=self.stopping,
            name=name,
        )
        election = self.election
        self.intake = Intake(
            self.forwarder,
            Rejections(options.channel, log=logger, dead_letters=dead_letters),
            self.stats,
            statuses=options.statuses,
            max_payload_bytes=options.max_payload_bytes,
            fence=(lambda: election.fence) if election else lambda: None,
            on_fenced=self._deposed,
        )
        self._entered = {state: asyncio.Event() for state in BridgeState}
        stream = options.ingest_stream
        self.durable = (
            DurableIngest(
                self.intake,
                history,
                redis_url=options.redis_url,
                stream=stream,
                consumer=name,
                active=lambda: self.role is Role.ACTIVE,
                stopping=self.stopping,
                delays=delays,
                block_seconds=options.durable_block_seconds,
            )
            if stream
            else None
        )
        self.takeover = Takeover(
            self.intake,
            history,
            self.stats,
            self.forwarder.retry,
            max_seconds=options.standby_buffer_seconds,
            max_messages=options.standby_buffer_messages,
        )
        self._pumped = asyncio.Event()  # the lease is released only once nothing is in hand

    @property
    def role(self) -> Role:
        """Whether this bridge forwards updates now (always, without a lease)."""
        return self.election.role if self.election else Role.ACTIVE

    def _drained(self) -> bool:
        """Whether everything received from the channel is recorded (for the lease)."""
        return not self._in_hand and not self.unaligned

    @property
    def unaligned(self) -> bool:
        """Whether this bridge holds a lease it has not yet aligned its ring for: every
        new holder aligns (:meth:`align`) before it forwards (a holder whose subscription
        went on across a Redis restart keeps its lease, and its alignment)."""
        election = self.election
        if election is None or election.role is not Role.ACTIVE or election.tenure is None:
            return False
        return election.tenure.token != self._aligned

    def _deposed(self) -> None:
        if self.election is not None:
            logger.warning(
                "bridge %s: the history refused a write: another bridge holds the lease",
                self.election.lease.holder,
            )
            self.election.deposed()

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
            await self.intake.aclose()
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
                    continuous = await self._before_subscribing()
                    await pubsub.subscribe(self.options.channel)
                    await self._subscribed(continuous)
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
                if self.election is not None:
                    self.election.segment = None  # not subscribed: no candidate meanwhile
                await client.aclose()

    async def _before_subscribing(self) -> bool:
        """Wait until this bridge may subscribe (see :meth:`Election.wait_to_subscribe`);
        return whether its subscription continues the last one: it holds the lease, Redis
        restarted meanwhile and no other bridge subscribed since, so it is the first
        subscriber (the others wait for it) and nothing was published it did not get."""
        if self.election is None:
            return False
        standing = await self.election.wait_to_subscribe(self.stopping)
        if standing is None:
            return False
        self.election.run_id = standing.run_id
        restarted = self._run_id is not None and standing.run_id != self._run_id
        first = standing.others_listening == 0
        return restarted and first and self.role is Role.ACTIVE

    async def _subscribed(self, continuous: bool) -> None:
        """Start the subscription's segment of the ring (unless it continues the last
        one) and register it with the lease, which may now choose another holder."""
        if continuous:
            logger.info("bridge: Redis restarted, this bridge subscribed first: its ring goes on")
        else:
            self.segment += 1
            self.takeover.subscribed(time.time())
        election = self.election
        if election is None:
            return
        election.segment = self.segment
        await election.check()
        standing = election.standing
        if standing is not None:
            self.since_ms, self._run_id = standing.since_ms, standing.run_id

    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand."""
        self.stopping.set()

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        while not self.stopping.is_set():
            payloads = await self._read_batch(pubsub)
            if payloads:
                self._in_hand = True
                try:
                    await self.handle_many(payloads)
                finally:
                    self._in_hand = False
            elif self.unaligned:
                await self.align()

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
        received_at = self.intake.received(len(payloads))
        batch: list[tuple[JobUpdate, str]] = []
        digests: list[str] = []
        keep = self.role is Role.ACTIVE  # one dead letter per message, not one per bridge
        for payload in payloads:
            accepted = await self.intake.accept(payload, received_at, keep=keep)
            if accepted is not None:
                batch.append(accepted)
                digests.append(digest(payload))
        if not batch:
            return 0
        if self.role is Role.ACTIVE and not self.unaligned:
            outcome = await self.intake.forward(Batch(batch, received_at, digests=digests))
            if outcome is Outcome.SENT:
                self.takeover.recorded(digests, received_at)
                return len(batch)
            if outcome is Outcome.STOPPED:
                return len(batch)
        # a standby, just active (align first, then these in order), or deposed just now
        self.takeover.buffer(batch, digests, received_at)
        self.stats.skipped_as_standby += len(batch)
        if self.role is Role.ACTIVE:
            await self.align()
        else:
            logger.debug("standby: leaving %d update(s) to the active bridge", len(batch))
        return len(batch)

    async def align(self) -> Outcome:
        """Forward what the ring holds that the history lacks (see :class:`Takeover`)."""
        tenure = self.election.tenure if self.election else None
        if tenure is None:
            return Outcome.SENT
        outcome = await self.takeover.run(tenure, self.since_ms)
        if outcome is Outcome.SENT:
            self._aligned = tenure.token
            self.aligned.set()
        return outcome
