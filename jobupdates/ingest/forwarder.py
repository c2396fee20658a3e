"""Recording and sending a batch of valid updates, retried until they go through.

:class:`Forwarder` is the bridge's output: it records each update in the
:class:`~jobupdates.history.History` (which gives it its position), then
``group_send``\\ s them (:class:`~jobupdates.protocol.events.JobUpdateEvent`),
in order, in one pipeline each when the layer offers ``group_send_many``. A
Redis failure is retried with backoff, never dropped; only a stop request ends
the retries, and that is logged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from redis.exceptions import RedisError

from jobupdates.history import History
from jobupdates.ingest.stopping import pause
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.events import JobUpdateEvent
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.positions import with_position

__all__ = ["Forwarder", "GroupSender", "Stopped"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class GroupSender(Protocol):
    """The part of a channel layer the bridge uses."""

    async def group_send(self, group: str, message: dict[str, Any]) -> None: ...


class Stopped(Exception):
    """The bridge stopped while retrying; the argument says what was being retried."""


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
    ) -> None:
        """Args:
        layer: The channel layer.
        group: The group to send to.
        history: Where updates are recorded; without one they carry no position.
        delays: Makes a fresh iterator of retry delays, in seconds.
        stopping: Set when the bridge stops; ends the retries.
        """
        self.layer = layer
        self.group = group
        self.history = history
        self.delays = delays
        self.stopping = stopping
        self.last_recorded: str | None = None
        """The position of the last update it recorded: Redis must still hold it."""

    async def forward(
        self,
        batch: list[tuple[JobUpdate, str]],
        received_at: float,
        ingest_ids: list[str] | None = None,
        digests: list[str] | None = None,
    ) -> bool:
        """Record and send ``(update, frame)`` pairs in order; False if stopped first (logged).

        ``ingest_ids`` (durable ingest) and ``digests`` (of the PUBLISHed payloads)
        are recorded with the history entries.
        """
        history = self.history
        positions: list[str | None] = [None] * len(batch)
        try:
            if history is not None:
                items = [(update.job_id, frame) for update, frame in batch]
                positions = list(
                    await self.retry(
                        "record",
                        lambda: history.append_many(
                            items, ingest_ids, digests, after=self.last_recorded
                        ),
                    )
                )
                self.last_recorded = positions[-1] if positions else self.last_recorded
            events = [
                JobUpdateEvent(
                    text=with_position(frame, position) if position else frame,
                    job_id=update.job_id,
                    position=position,
                    received_at=received_at,
                ).to_event()
                for (update, frame), position in zip(batch, positions, strict=True)
            ]
            await self._send(events)
        except Stopped as stopped:
            jobs = ", ".join(loggable(update.job_id, 60) for update, _ in batch[:10])
            logger.error(
                "stopping with %d update(s) not forwarded (jobs %s; %s failed)",
                len(batch),
                jobs,
                stopped,
            )
            return False
        return True

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
