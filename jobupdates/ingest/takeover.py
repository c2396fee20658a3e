"""Taking over from another bridge without losing what it never recorded.

Every bridge stays subscribed and keeps a :class:`~jobupdates.protocol.alignment.Ring`
of the valid messages it received: with the parsed update while it is a
standby, only the digest while it is the active bridge (it recorded them).
The active bridge records each update's payload digest in the history
(field ``d``). When a bridge that was a standby becomes active (the lease
expired after a crash, or the stopping bridge released it), before it forwards
anything newer it reads the history's tail, aligns its ring with it
(:func:`~jobupdates.protocol.alignment.align`) and forwards, in order and once,
exactly the buffered updates the old bridge never recorded. What arrives
meanwhile waits in the subscription and is forwarded after.

If the ring cannot cover the gap, that is logged as a WARNING and counted
(``gaps`` in the bridge's report, ``/ws/stats`` and ``jobupdates_bridge_gaps_total``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from jobupdates.ingest.forwarder import Stopped
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.alignment import Ring, align

if TYPE_CHECKING:
    from jobupdates.ingest.bridge import Bridge

__all__ = ["TAIL_MARGIN", "Takeover"]

logger = logging.getLogger("jobupdates.ingest.bridge")

TAIL_MARGIN = 100
"""History entries read beyond the ring's length (durable ingest's have no digest)."""
CHUNK = 500
"""The most buffered updates recorded and sent in one pipeline."""

Item = tuple[JobUpdate, str]


class Takeover:
    """One bridge's ring, and its alignment with the history when it becomes active."""

    def __init__(self, bridge: Bridge, *, max_seconds: float, max_messages: int) -> None:
        """Args:
        bridge: The bridge whose forwarder, history and stats are used.
        max_seconds: How long the ring keeps a message (JOBUPDATES_STANDBY_BUFFER_SECONDS).
        max_messages: How many messages it keeps (JOBUPDATES_STANDBY_BUFFER_MESSAGES).
        """
        self.bridge = bridge
        self.ring: Ring[Item] = Ring(max_seconds=max_seconds, max_messages=max_messages)
        self.pending = False
        """Whether the bridge buffered as a standby and has not aligned since."""

    def subscribed(self, now: float) -> None:
        """The bridge (re)subscribed: what came before may have been missed."""
        self.ring.restart(now)

    def buffer(self, batch: list[Item], digests: list[str], received_at: float) -> None:
        """Keep updates received as a standby (or before the alignment) to forward later."""
        for item, mark in zip(batch, digests, strict=True):
            self.ring.add(mark, item, received_at)
        self.pending = True

    def recorded(self, digests: list[str], received_at: float) -> None:
        """Keep the digests of updates this bridge recorded as the active bridge."""
        for mark in digests:
            self.ring.add(mark, None, received_at)

    async def run(self) -> bool:
        """Align the ring with the history and forward what it lacks; False if stopped first."""
        bridge = self.bridge
        history = bridge.forwarder.history
        ring = list(self.ring)
        tail: list[str] = []
        newest_at: float | None = None
        if history is not None:
            try:
                tail, newest_at = await bridge.forwarder.retry(
                    "read the history's tail",
                    lambda: history.digest_tail(len(ring) + TAIL_MARGIN),
                )
            except Stopped:
                return False
        alignment = align(
            [entry.digest for entry in ring], tail, since=self.ring.since, newest_at=newest_at
        )
        todo = [(entry.digest, entry.item, entry.at) for entry in ring[alignment.start :]]
        unsent = [(mark, item, at) for mark, item, at in todo if item is not None]
        if alignment.gap:
            bridge.stats.gaps += 1
            logger.warning(
                "takeover: updates published before %d buffered one(s) may be lost: %s",
                len(unsent),
                alignment.why,
            )
        logger.info(
            "takeover: %d update(s) buffered, %d already in the history, forwarding %d",
            len(ring),
            alignment.start,
            len(unsent),
        )
        for offset in range(0, len(unsent), CHUNK):
            chunk = unsent[offset : offset + CHUNK]
            batch = [item for _, item, _ in chunk if item is not None]
            digests = [mark for mark, _, _ in chunk]
            if not await bridge.forwarder.forward(batch, chunk[0][2], digests=digests):
                return False
            bridge.stats.forwarded += len(batch)
            bridge.stats.recovered += len(batch)
            for update, _ in batch:
                bridge.stats.forwarded_by_status[update.status] += 1
        self.ring.mark_recorded()
        self.pending = False
        return True
