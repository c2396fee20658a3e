"""Handing one job update to every local member of its group, once, in the history's order.

:func:`fan_out` is the fast path's inner loop: the layer decoded the update
once, :func:`job_update_send` built its ``websocket.send`` message once, and
each member's sink (its connection's :class:`~jobupdates.delivery.feed.Feed`)
takes the same message; a member without a sink gets the raw layer message
on its ordinary path. One member's failure never stops the loop.

:class:`JobGroup` puts the job-updates group's events in the history's order
first (:class:`~jobupdates.protocol.sequence.Sequencer`): a copy of an update
already delivered is dropped, and what the process missed (an event naming a
predecessor it never got, or a subscription that dropped and came back) is
read from the history and delivered before anything newer
(:func:`~jobupdates.delivery.resync.missed`). Per update and process, not per
connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from redis.exceptions import RedisError

from jobupdates.delivery.faults import Fault, LayerFaults
from jobupdates.delivery.mailboxes import Slot
from jobupdates.delivery.resync import ORIGIN, missed, resume_after
from jobupdates.delivery.unencodable import json_frame
from jobupdates.history import History
from jobupdates.monitoring.deliveries import counters
from jobupdates.monitoring.metrics import DUPLICATES_DROPPED, UPDATES_FILLED
from jobupdates.protocol.events import JobUpdateEvent
from jobupdates.protocol.frames import reset_frame
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.positions import Position, PositionError, ResetReason
from jobupdates.protocol.sequence import Sequencer, Verdict

__all__ = [
    "SINK_FAILED_EVENT",
    "InOrder",
    "JobGroup",
    "Local",
    "Sink",
    "fan_out",
    "job_update_send",
]

logger = logging.getLogger("jobupdates.delivery.layers")

Sink = Callable[[dict[str, Any]], Awaitable[object]]
"""Takes the ASGI message of :func:`job_update_send`; returns False if it did not
send it (filtered out), anything else if it did."""

SINK_FAILED_EVENT = "jobupdates.sink_failed"
"""Event the layer puts on a channel whose sink raised: ``{"type": ..., "reason": str}``.
The consumer closes that connection (1011); the sink is already detached."""

READ_PATIENCE_SECONDS = 10.0
"""How long a process asks the history again for what it missed (a Redis loading its
data after a restart answers ``LOADING``) before it tells its connections ``reset``."""

RESET_MESSAGES = {
    ResetReason.GAP_NOT_COVERED: "updates may have been missed; reload the state",
    ResetReason.HISTORY_UNAVAILABLE: "the update history could not be read; reload the state",
}


class Local(Protocol):
    """What a process's layer knows of its local channels (channels_redis's loop layer)."""

    channels: dict[str, Slot]
    sinks: dict[str, Sink]
    groups: dict[str, Iterable[str]]
    faults: LayerFaults


def job_update_send(update: JobUpdateEvent) -> dict[str, Any]:
    """The ``websocket.send`` message of a job update, built once per process.

    ``job_id``, ``position`` and ``gap`` ride along for the sinks' filters, and
    ``frame``, the WebSocket frame, for sinks that write to the socket
    themselves (:data:`~jobupdates.delivery.unencodable.UNENCODABLE` if the text is
    not JSON: an older bridge's ``Infinity``); ASGI servers ignore keys they do not know.
    """
    text = update.text
    return {
        "type": "websocket.send",
        "text": text,
        "job_id": update.job_id,
        "position": update.position,
        "gap": update.gap,
        "frame": json_frame(text, update.position, update.job_id),
    }


async def fan_out(
    local: Local,
    members: Iterable[str],
    update: JobUpdateEvent,
    data: Callable[[], bytes],
    serialize: Callable[[dict[str, Any]], bytes],
) -> None:
    """Hand ``update`` to each member's sink, or its raw layer message (``data()``)
    to a member without one; count the delivery once, for /metrics. ``serialize``
    encodes the event that asks a member whose sink raised to close."""
    send = job_update_send(update) if local.sinks else None
    delivered = 0
    for channel in tuple(members):  # a sink may await while membership changes
        queue = local.channels.get(channel)
        if queue is None:
            local.sinks.pop(channel, None)  # the consumer is gone
            continue
        sink = local.sinks.get(channel) if send is not None else None
        if sink is None:
            queue.put_nowait(data())
            continue
        try:
            if await sink(send) is not False:  # type: ignore[arg-type]
                delivered += 1
        except Exception as exc:  # one broken connection must not stop the fan-out
            sink_failed(local, serialize, channel, queue, exc)
    if send is not None:  # once per update and process
        counters.fanout(delivered, update.received_at)


def sink_failed(
    local: Local,
    serialize: Callable[[dict[str, Any]], bytes],
    channel: str,
    queue: Slot,
    exc: Exception,
) -> None:
    """Detach ``channel``'s sink and ask its consumer to close the connection."""
    local.sinks.pop(channel, None)
    reason = f"its direct send raised {type(exc).__name__}"
    queue.put_nowait(serialize({"type": SINK_FAILED_EVENT, "reason": reason}))
    detail = f"{reason}: {loggable(exc)}; detached {channel}, its consumer closes it (1011)"
    local.faults.record(Fault.SINK_FAILED, detail, exc)


Deliver = Callable[[JobUpdateEvent, "bytes | None"], Awaitable[object]]
"""Hands one event to the connections; its raw layer message if it came as one."""


class InOrder:
    """Events of the job-updates group delivered once each, in the history's order:
    for a whole process on the fast path (the layer's :class:`JobGroup`), or for one
    connection with another channel layer (its consumer)."""

    def __init__(self, deliver: Deliver, history: Callable[[], History], name: str) -> None:
        """Args:
        deliver: Hands one event to the connections.
        history: Gives the history to read what was missed.
        name: What is delivered to, for log lines.
        """
        self.deliver = deliver
        self.history = history
        self.name = name
        self.sequencer = Sequencer()
        self.duplicates = 0
        """Events dropped: their position was not newer than the last delivered."""
        self.filled = 0
        """Updates read from the history because they were missed."""

    async def start(self) -> None:
        """Delivery is about to start (a subscription): whatever was recorded before is
        not for it, and a gap after it will be filled."""
        try:
            _, newest = await self.history().bounds()
        except (RedisError, OSError) as exc:
            logger.warning(
                "%s: cannot read the history's newest position (%s: %s); "
                "the first update delivered will be taken as the start",
                self.name,
                type(exc).__name__,
                exc,
            )
            self.sequencer.last = None
            return
        self.sequencer.last = newest or ORIGIN

    async def receive(self, update: JobUpdateEvent, data: bytes | None = None) -> bool:
        """Deliver one event, after what was missed before it; False if it was dropped."""
        try:
            position = Position.parse(update.position) if update.position else None
            prev = Position.parse(update.prev) if update.prev else None
        except PositionError:
            position = prev = None  # not a history's position: no order to keep
        if position is None:
            await self.deliver(update, data)
            return True
        verdict = self.sequencer.admit(position, prev)
        if verdict is Verdict.DUPLICATE:
            self.duplicates += 1
            DUPLICATES_DROPPED.inc()
            logger.debug("%s: dropped %s, not newer than %s", self.name, position, prev)
            return False
        last = self.sequencer.last
        if verdict is Verdict.FILL and last is not None:
            logger.info(
                "%s: update %s follows %s, but the last one delivered is %s: "
                "reading what was missed from the history",
                self.name,
                update.position,
                update.prev,
                last,
            )
            await self.catch_up(last, prev)
        await self.deliver(update, data)
        self.sequencer.delivered(position)
        return True

    async def resubscribed(self, lost_at: float) -> None:
        """The subscription dropped at ``lost_at`` and came back: deliver what was
        recorded meanwhile, before anything newer."""
        start = resume_after(self.sequencer.last, lost_at)
        before = self.filled
        logger.info(
            "channel layer re-subscribed after %.1fs; replaying what was recorded after %s",
            time.time() - lost_at,
            start,
        )
        await self.catch_up(start, None)
        logger.info("replayed the subscription gap: %d updates", self.filled - before)

    async def catch_up(self, after: Position, upto: Position | None) -> None:
        """Deliver what was recorded after ``after`` (up to ``upto``), or a reset.

        A Redis that cannot answer yet (still loading its append-only file after a
        restart, or reconnecting) is asked again, from what was delivered last, for
        up to :data:`READ_PATIENCE_SECONDS`; then every connection gets a reset
        (``history_unavailable``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READ_PATIENCE_SECONDS
        delay = 0.05
        while True:
            try:
                async for item in missed(self.history(), after, upto):
                    if isinstance(item, ResetReason):
                        await self._reset(item)
                        continue
                    update = JobUpdateEvent(
                        item.frame, item.job_id or None, str(item.position), gap=item.gap
                    )
                    await self.deliver(update, None)
                    self.sequencer.delivered(item.position)
                    after = item.position
                    self.filled += 1
                    UPDATES_FILLED.inc()
                return
            except (RedisError, OSError) as exc:
                if loop.time() >= deadline:
                    logger.warning(
                        "%s: cannot read what was missed from the history (%s: %s)",
                        self.name,
                        type(exc).__name__,
                        exc,
                    )
                    await self._reset(ResetReason.HISTORY_UNAVAILABLE)
                    return
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _reset(self, reason: ResetReason) -> None:
        """Tell every connection, in stream order, that it may have missed updates."""
        text = reset_frame(reason.value, RESET_MESSAGES.get(reason, "reload the state"))
        await self.deliver(JobUpdateEvent(text, gap=True), None)


class JobGroup(InOrder):
    """The job-updates group in one process: each event fanned out to every local
    member once, in order."""

    def __init__(
        self,
        local: Local,
        channel: str,
        serialize: Callable[[dict[str, Any]], bytes],
        history: Callable[[], History],
    ) -> None:
        """Args:
        local: The process's loop layer.
        channel: The group's channel name in Redis.
        serialize: Encodes a layer message (for members without a sink).
        history: Gives the history to read what the process missed.
        """
        super().__init__(self._fan_out, history, "channel layer")
        self.local = local
        self.channel = channel
        self.serialize = serialize

    async def _fan_out(self, update: JobUpdateEvent, data: bytes | None) -> None:
        members = self.local.groups.get(self.channel)
        if members:
            raw = (lambda: data) if data is not None else functools.partial(self._encode, update)
            await fan_out(self.local, members, update, raw, self.serialize)

    def _encode(self, update: JobUpdateEvent) -> bytes:
        return self.serialize(update.to_event())
