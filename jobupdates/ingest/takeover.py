"""Taking over from another bridge without losing or repeating what it never recorded.

Every bridge stays subscribed and keeps a :class:`~jobupdates.protocol.alignment.Ring`
of the valid messages it received since it subscribed: with the parsed update
while it is a standby (or when the history refused its write: it was deposed),
only the digest once it recorded them. The active bridge records each
update's payload digest in the history (field ``d``). When a bridge becomes
active, before it forwards anything newer it reads the digests recorded since
a little before its ring's first entry, aligns its ring with them
(:func:`~jobupdates.protocol.alignment.align`) and forwards, in order and once,
exactly the buffered updates the old bridge never recorded. What arrives
meanwhile waits in the subscription and is forwarded after.

When the alignment cannot tell (:attr:`~jobupdates.protocol.alignment.Alignment.gap`),
nothing is forwarded twice: the gap is recorded in the history before what is
forwarded, so every client whose stream crosses it gets a ``reset``
(``updates_lost``), and it is logged and counted (``gaps`` in the bridge's
report, ``/ws/stats`` and ``jobupdates_bridge_gaps_total``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from jobupdates.history import History
from jobupdates.ingest.counters import BridgeStats
from jobupdates.ingest.forwarder import Batch, Outcome, Stopped
from jobupdates.ingest.intake import Intake
from jobupdates.ingest.leadership import Previous, Tenure
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.alignment import Ring, align

__all__ = ["MAX_BATCH", "TAIL_MARGIN_SECONDS", "Takeover"]

logger = logging.getLogger("jobupdates.ingest.bridge")

TAIL_MARGIN_SECONDS = 2.0
"""How long before its ring's first entry a takeover reads the history from (clock
skew between hosts, and the old bridge's delay in recording)."""
MAX_BATCH = 500
"""The most updates read, then recorded and sent in one pipeline each (every input)."""

Item = tuple[JobUpdate, str]
T = TypeVar("T")


class Retry(Protocol):
    """Runs a Redis call until it succeeds (:meth:`Forwarder.retry`)."""

    async def __call__(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T: ...


class Takeover:
    """One bridge's ring, and its alignment with the history when it becomes active."""

    def __init__(
        self,
        intake: Intake,
        history: History | None,
        stats: BridgeStats,
        retry: Retry,
        *,
        max_seconds: float,
        max_messages: int,
    ) -> None:
        """Args:
        intake: Where the buffered updates are forwarded.
        history: The history to align with; without one, the ring is forwarded whole.
        stats: The bridge's counters (``gaps``).
        retry: Runs a Redis read until it succeeds (:meth:`Forwarder.retry`).
        max_seconds: How long the ring keeps a message (JOBUPDATES_STANDBY_BUFFER_SECONDS).
        max_messages: How many messages it keeps (JOBUPDATES_STANDBY_BUFFER_MESSAGES).
        """
        self.intake = intake
        self.history = history
        self.stats = stats
        self.retry = retry
        self.ring: Ring[Item] = Ring(max_seconds=max_seconds, max_messages=max_messages)

    def subscribed(self, now: float) -> None:
        """The bridge subscribed anew: what came before may have been missed."""
        self.ring.restart(now)

    def buffer(self, batch: list[Item], digests: list[str], received_at: float) -> None:
        """Keep updates received as a standby (or refused: deposed) to forward later."""
        for item, mark in zip(batch, digests, strict=True):
            self.ring.add(mark, item, received_at)

    def recorded(self, digests: list[str], received_at: float) -> None:
        """Keep the digests of updates this bridge recorded as the active bridge."""
        for mark in digests:
            self.ring.add(mark, None, received_at)

    async def run(self, tenure: Tenure, since_ms: int | None) -> Outcome:
        """Align the ring with the history and forward what it lacks.

        Args:
            tenure: The lease this bridge took (how the last one ended).
            since_ms: When this bridge's subscription began (Redis's clock), if known.
        """
        ring = list(self.ring)
        oldest = min([entry.at for entry in ring[:1]] + [self.ring.since or time.time()])
        tail: list[str] = []
        held: bool = False
        if self.history is not None:
            history = self.history
            start_ms = int((oldest - TAIL_MARGIN_SECONDS) * 1000)

            async def read() -> tuple[list[str], bool]:
                _, newest = await history.bounds()
                return await history.published_since(start_ms), newest is not None

            try:
                tail, held = await self.retry("read the history's tail", read)
            except Stopped:
                return Outcome.STOPPED
        if self.ring.dropped and since_ms is not None:  # it holds less than since it subscribed
            since_ms = max(since_ms, int(oldest * 1000))
        # a history kept without a lease of this version (an older bridge's, or Redis lost
        # the lease's keys) says nothing about how the last recorder stopped
        unknown = tenure.previous is Previous.NONE and held
        covered = tenure.covers(since_ms) and not unknown
        alignment = align([entry.digest for entry in ring], tail, covered=covered)
        todo = [entry for entry in ring[alignment.start :] if entry.item is not None]
        if alignment.gap:
            self.stats.gaps += 1
            logger.warning(
                "takeover: updates published before %d buffered one(s) may be lost: %s; "
                "recording the gap (clients get a reset there)",
                len(todo),
                alignment.why,
            )
        logger.info(
            "takeover: %d update(s) buffered, %d already in the history, forwarding %d",
            len(ring),
            alignment.start,
            len(todo),
        )
        gap = alignment.why if alignment.gap else ""
        for offset in range(0, max(1, len(todo)), MAX_BATCH):
            chunk = todo[offset : offset + MAX_BATCH]
            if not chunk and not gap:
                break
            batch = Batch(
                [entry.item for entry in chunk if entry.item is not None],
                chunk[0].at if chunk else time.time(),
                digests=[entry.digest for entry in chunk],
                gap=gap,
                recovered=True,
            )
            outcome = await self.intake.forward(batch)
            if outcome is not Outcome.SENT:
                return outcome
            gap = ""
        self.ring.mark_recorded()
        return Outcome.SENT
