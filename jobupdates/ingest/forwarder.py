"""Recording and sending a batch of valid updates, retried until they go through.

:class:`Forwarder` is the bridge's output: it records each update in the
:class:`~jobupdates.history.History` (which gives it its position), then
``group_send``\\ s them (:class:`~jobupdates.protocol.events.JobUpdateEvent`,
each naming the position recorded before it), in order, in one pipeline each
when the layer offers ``group_send_many``. A Redis failure is retried with
backoff, never dropped (a retry of a recording whose reply was lost records
nothing twice: the batch has an ID); only a stop request ends the retries,
and that is logged. A write the history refuses because the bridge no longer
holds the lease (:class:`~jobupdates.history.Fence`) is not retried:
:attr:`Outcome.FENCED`.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from redis.exceptions import RedisError

from jobupdates.history import Appended, Fence, History
from jobupdates.ingest.stopping import pause
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.events import JobUpdateEvent
from jobupdates.protocol.frames import gap_frame
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.positions import with_position

__all__ = ["Batch", "Forwarder", "GroupSender", "Outcome", "Stopped"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class GroupSender(Protocol):
    """The part of a channel layer the bridge uses."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...


class Stopped(Exception):
    """The bridge stopped while retrying; the argument says what was being retried."""


class Outcome(enum.Enum):
    """How forwarding one batch ended."""

    SENT = "sent"
    """Recorded and sent."""
    STOPPED = "stopped"
    """The bridge stopped while retrying (logged at ERROR)."""
    FENCED = "fenced"
    """Nothing recorded: another bridge holds the lease now."""


@dataclass(frozen=True, slots=True)
class Batch:
    """Valid updates to record and send together, in order.

    Attributes:
        updates: ``(update, frame)`` pairs.
        received_at: When the bridge received them (Unix time).
        digests: One per update: the PUBLISHed payload's digest (field ``d``).
        ingest_ids: One per update: the durable ingest entry's ID (field ``i``).
        gap: A gap to record before the updates: why updates may be missing.
        recovered: Whether they come from a standby's ring, on a takeover.
    """

    updates: list[tuple[JobUpdate, str]]
    received_at: float
    digests: list[str] | None = None
    ingest_ids: list[str] | None = None
    gap: str = ""
    recovered: bool = False


class Forwarder:
    """Records and sends updates for one bridge."""

    def __init__(
        self,
        *,
        layer: GroupSender,
        group: str,
        history: History | None,
        delays: Callable[[], Iterator[float]],
        stopping: asyncio.Event,
        name: str = "bridge",
    ) -> None:
        """Args:
        layer: The channel layer.
        group: The group to send to.
        history: Where updates are recorded; without one they carry no position.
        delays: Makes a fresh iterator of retry delays, in seconds.
        stopping: Set when the bridge stops; ends the retries.
        name: The bridge's name (no spaces), in its batches' IDs.
        """
        self.layer = layer
        self.group = group
        self.history = history
        self.delays = delays
        self.stopping = stopping
        self.last_recorded: str | None = None
        """The position of the last entry it recorded: Redis must still hold it."""
        self._batch_ids = (f"{name}/{n}" for n in itertools.count())

    async def forward(self, batch: Batch, fence: Fence | None = None) -> Outcome:
        """Record and send a batch in order; with ``fence``, only while Redis holds it."""
        try:
            if self.history is not None:
                appended = await self._record(self.history, batch, fence)
                if appended.fenced:
                    return Outcome.FENCED
                events = self._recorded_events(batch, appended)
            else:
                events = [
                    JobUpdateEvent(frame, update.job_id, None, batch.received_at).to_event()
                    for update, frame in batch.updates
                ]
            await self._send(events)
        except Stopped as stopped:
            jobs = ", ".join(loggable(update.job_id, 60) for update, _ in batch.updates[:10])
            logger.error(
                "stopping with %d update(s) not forwarded (jobs %s; %s failed)",
                len(batch.updates),
                jobs,
                stopped,
            )
            return Outcome.STOPPED
        return Outcome.SENT

    async def _record(self, history: History, batch: Batch, fence: Fence | None) -> Appended:
        items = [(update.job_id, frame) for update, frame in batch.updates]
        batch_id = next(self._batch_ids)
        appended = await self.retry(
            "record",
            lambda: history.append_many(
                items,
                batch.ingest_ids,
                batch.digests,
                after=self.last_recorded,
                fence=fence,
                batch_id=batch_id,
                gap=batch.gap,
            ),
        )
        if not appended.fenced:
            newest = appended.positions[-1] if appended.positions else appended.gap
            self.last_recorded = newest or self.last_recorded
        return appended

    @staticmethod
    def _recorded_events(batch: Batch, appended: Appended) -> list[dict[str, Any]]:
        """The layer events of a recorded batch: its gap, then its updates, each naming
        the position recorded before it."""
        events = []
        prev = appended.prev
        if appended.gap is not None:
            text = gap_frame(batch.gap, appended.gap)
            events.append(
                JobUpdateEvent(text, None, appended.gap, batch.received_at, prev, True).to_event()
            )
            prev = appended.gap
        for (update, frame), position in zip(batch.updates, appended.positions, strict=True):
            text = with_position(frame, position)
            events.append(
                JobUpdateEvent(text, update.job_id, position, batch.received_at, prev).to_event()
            )
            prev = position
        return events

    async def _send(self, events: list[dict[str, Any]]) -> None:
        send_many = getattr(self.layer, "group_send_many", None)
        if send_many is not None:
            await self.retry("group_send", lambda: send_many(self.group, events))
            return
        for event in events:
            await self.retry(
                "group_send", functools.partial(self.layer.group_send, self.group, event)
            )

    async def retry(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it succeeds; raise :class:`Stopped` if the bridge stops first."""
        delays = self.delays()
        while True:
            try:
                return await attempt()
            except (RedisError, OSError) as exc:
                if self.stopping.is_set():
                    raise Stopped(what) from exc
                delay = next(delays)
                logger.warning(
                    "%s failed (%s: %s); retrying in %.2fs", what, type(exc).__name__, exc, delay
                )
                await pause(self.stopping, delay)
