"""The bridge: Redis pub/sub channel -> channel-layer group.

:class:`Bridge` subscribes to the channel the workers PUBLISH on, validates
each message with :func:`jobupdates.protocol.parse_job_update`, encodes the
client frame once, and ``group_send``s it. It owns its connection state:
every loss of Redis is logged, followed by a reconnect after a capped,
jittered backoff; a valid update that cannot be forwarded is retried, never
dropped. ``manage.py run_bridge`` only builds a :class:`Bridge` and calls
:func:`run_until_signalled`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from jobupdates.protocol import (
    DEFAULT_STATUSES,
    JOB_UPDATE_EVENT,
    InvalidJobUpdate,
    RejectReason,
    parse_job_update,
)

__all__ = ["Bridge", "BridgeState", "BridgeStats", "run_until_signalled"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How long one read waits for a message; bounds how late a stop request is seen."""
PREVIEW_BYTES = 120
"""How much of a rejected payload is logged."""


class GroupSender(Protocol):
    """The part of a channel layer the bridge uses."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...


class BridgeState(enum.StrEnum):
    """Where the bridge's connection to Redis stands."""

    STARTING = "starting"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


@dataclass
class BridgeStats:
    """Counters of what the bridge has seen since it started."""

    received: int = 0
    forwarded: int = 0
    rejected: collections.Counter[RejectReason] = field(default_factory=collections.Counter)
    reconnects: int = 0


class Bridge:
    """Forwards valid job updates from a Redis channel into a channel-layer group."""

    def __init__(
        self,
        *,
        redis_url: str,
        channel: str,
        group: str,
        layer: GroupSender,
        delays: Callable[[], Iterator[float]],
        statuses: tuple[str, ...] = DEFAULT_STATUSES,
        max_payload_bytes: int = 1024 * 1024,
        socket_timeout: float = 30.0,
        health_check_interval: float = 10.0,
    ) -> None:
        """Set up a bridge; nothing connects until :meth:`run`.

        Args:
            redis_url: The Redis to subscribe to.
            channel: The pub/sub channel the workers publish on.
            group: The channel-layer group to forward into.
            layer: The channel layer.
            delays: Makes a fresh iterator of reconnect delays, in seconds.
            statuses: The job statuses to accept.
            max_payload_bytes: The largest message to accept.
            socket_timeout: Seconds one Redis command may take.
            health_check_interval: Seconds of silence before the connection is PINGed.
        """
        self.redis_url = redis_url
        self.channel = channel
        self.group = group
        self.layer = layer
        self.delays = delays
        self.statuses = statuses
        self.max_payload_bytes = max_payload_bytes
        self.socket_timeout = socket_timeout
        self.health_check_interval = health_check_interval
        self.state = BridgeState.STARTING
        self.stats = BridgeStats()
        self.stopping = asyncio.Event()
        self._entered = {state: asyncio.Event() for state in BridgeState}

    def _set_state(self, state: BridgeState, why: str = "") -> None:
        if state is not self.state:
            logger.info(
                "bridge %s -> %s%s", self.state.value, state.value, f": {why}" if why else ""
            )
            self._entered[self.state].clear()
            self.state = state
            self._entered[state].set()

    async def wait_for_state(self, state: BridgeState) -> None:
        """Return once the bridge is in ``state``."""
        await self._entered[state].wait()

    async def run(self) -> None:
        """Subscribe and forward until :meth:`stop` is called; reconnect on any loss."""
        delays = self.delays()
        while not self.stopping.is_set():
            self._set_state(BridgeState.CONNECTING, self.redis_url)
            client = aioredis.Redis.from_url(
                self.redis_url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                socket_keepalive=True,
                health_check_interval=self.health_check_interval,
                retry=Retry(NoBackoff(), 0),  # the bridge reconnects itself, and logs it
            )
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._set_state(BridgeState.SUBSCRIBED, f"listening on {self.channel!r}")
                    delays = self.delays()
                    await self._pump(pubsub)
            except (RedisError, OSError) as exc:
                self.stats.reconnects += 1
                delay = next(delays)
                self._set_state(
                    BridgeState.BACKING_OFF,
                    f"lost Redis ({type(exc).__name__}: {exc}); retrying in {delay:.2f}s",
                )
                await self._sleep(delay)
            finally:
                await client.aclose()
        self._set_state(BridgeState.STOPPED)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the message in hand."""
        self.stopping.set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _pump(self, pubsub: aioredis.client.PubSub) -> None:
        while not self.stopping.is_set():
            message = await pubsub.get_message(timeout=POLL_SECONDS)
            if message is not None and message["type"] == "message":
                await self.handle(message["data"])

    async def handle(self, payload: bytes) -> bool:
        """Validate one message and forward it; return whether it was valid."""
        self.stats.received += 1
        try:
            text = parse_job_update(
                payload, statuses=self.statuses, max_bytes=self.max_payload_bytes
            ).to_frame()
        except InvalidJobUpdate as exc:
            self.stats.rejected[exc.reason] += 1
            logger.warning(
                "rejected message on %r: %s: %s; payload starts %r",
                self.channel,
                exc.reason.value,
                exc.detail,
                payload[:PREVIEW_BYTES],
            )
            return False
        await self._forward(text)
        return True

    async def _forward(self, text: str) -> None:
        delays = self.delays()
        while True:
            try:
                await self.layer.group_send(self.group, {"type": JOB_UPDATE_EVENT, "text": text})
            except (RedisError, OSError) as exc:
                if self.stopping.is_set():
                    logger.error("stopping with an update not forwarded: %s", text[:PREVIEW_BYTES])
                    return
                delay = next(delays)
                logger.warning(
                    "group_send failed (%s: %s); retrying in %.2fs", type(exc).__name__, exc, delay
                )
                await self._sleep(delay)
            else:
                self.stats.forwarded += 1
                return


async def run_until_signalled(bridge: Bridge) -> None:
    """Run ``bridge`` until SIGINT or SIGTERM, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stop_on_signal, bridge, signum)
    try:
        await bridge.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _stop_on_signal(bridge: Bridge, signum: int) -> None:
    logger.info("received %s; stopping", signal.Signals(signum).name)
    bridge.stop()
