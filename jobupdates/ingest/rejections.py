"""What the bridge does with a rejected message: log it (throttled) and keep it.

Every rejection is counted by the bridge. This module adds:

* a WARNING line per rejection, throttled by a :class:`LogThrottle` (a token
  bucket of :data:`LOG_BURST` lines, refilled at :data:`LOG_RATE` per
  second) so that a flood of 100,000 bad messages cannot flood the log;
  what was not logged is summed up by reason in one line at most every
  :data:`SUMMARY_SECONDS`, so nothing is discarded silently;
* a dead letter per rejection (:mod:`jobupdates.ingest.dead_letters`), written in
  batches by the rejection path itself and, for the last few, shortly after.

:class:`LogThrottle` is pure; :class:`Rejections` does the logging and I/O.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field

from jobupdates.access.limits import TokenBucket
from jobupdates.ingest.dead_letters import DeadLetterWriter
from jobupdates.protocol import InvalidJobUpdate
from jobupdates.protocol.dead_letters import dead_letter

__all__ = ["LOG_BURST", "LOG_RATE", "SUMMARY_SECONDS", "LogThrottle", "Rejections"]

LOG_RATE = 5.0
"""Rejection lines logged per second, on average, once the burst is spent."""
LOG_BURST = 50
"""Rejection lines logged at once before throttling starts."""
SUMMARY_SECONDS = 5.0
"""Longest time a rejection that was not logged waits to be summed up in a line."""
SETTLE_SECONDS = 0.25
"""How soon after a rejection the buffered dead letters are written."""
PREVIEW_BYTES = 120
"""How much of a rejected payload a log line shows."""


@dataclass
class LogThrottle:
    """Decides which rejections get a log line; counts the others by reason."""

    rate: float = LOG_RATE
    burst: int = LOG_BURST
    summary_seconds: float = SUMMARY_SECONDS
    suppressed: collections.Counter[str] = field(default_factory=collections.Counter)
    since: float | None = None
    """When the oldest rejection not yet logged or summed up came (monotonic)."""
    _bucket: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.rate, self.burst)

    def admit(self, reason: str, now: float) -> bool:
        """Return whether to log this rejection; count it as not logged if not."""
        if self._bucket.take(now):
            return True
        if self.since is None:
            self.since = now
        self.suppressed[reason] += 1
        return False

    def summary(self, now: float, *, force: bool = False) -> tuple[dict[str, int], float] | None:
        """Return the counts not logged and the seconds they span, once due; then reset."""
        if self.since is None or (not force and now - self.since < self.summary_seconds):
            return None
        counts, span = dict(sorted(self.suppressed.items())), now - self.since
        self.suppressed.clear()
        self.since = None
        return counts, span


class Rejections:
    """The bridge's rejection path: a throttled log line and a dead letter for each."""

    def __init__(
        self,
        channel: str,
        *,
        log: logging.Logger,
        dead_letters: DeadLetterWriter | None = None,
        throttle: LogThrottle | None = None,
    ) -> None:
        """Args:
        channel: The Redis channel the messages came on.
        log: Where the lines go (the bridge's logger).
        dead_letters: Where rejected messages are kept; None keeps none.
        throttle: Which rejections get a line; default: :class:`LogThrottle` ().
        """
        self.channel = channel
        self.log = log
        self.dead_letters = dead_letters
        self.throttle = throttle or LogThrottle()
        self._settling: asyncio.Task[None] | None = None

    async def reject(
        self, error: InvalidJobUpdate, payload: bytes, received_at: float, *, keep: bool = True
    ) -> None:
        """Log (throttled) and keep (if ``keep``) one rejected message; never raises for I/O."""
        now = time.monotonic()
        if self.throttle.admit(error.reason.value, now):
            self.log.warning(
                "rejected message on %r: %s: %s; payload starts %r",
                self.channel,
                error.reason.value,
                error.detail,
                payload[:PREVIEW_BYTES],
            )
        self._summarize(now)
        writer = self.dead_letters
        if keep and writer is not None:
            letter = dead_letter(
                payload,
                channel=self.channel,
                reason=error.reason.value,
                detail=error.detail,
                received_at=received_at,
            )
            if writer.add(letter):
                await writer.flush()
        if self._settling is None or self._settling.done():
            self._settling = asyncio.get_running_loop().create_task(self._settle())

    def _summarize(self, now: float, *, force: bool = False) -> None:
        summary = self.throttle.summary(now, force=force)
        if summary is None:
            return
        counts, span = summary
        self.log.warning(
            "%d rejected message(s) on %r not logged one by one in the last %.1fs "
            "(by reason: %s); all are counted in /ws/stats and kept as dead letters",
            sum(counts.values()),
            self.channel,
            span,
            ", ".join(f"{reason}={count}" for reason, count in counts.items()),
        )

    async def _settle(self) -> None:
        """Write the last dead letters and the last summary once the rejections stop."""
        while True:
            await asyncio.sleep(SETTLE_SECONDS)
            if self.dead_letters is not None:
                await self.dead_letters.flush()
            self._summarize(time.monotonic())
            pending = self.dead_letters.pending if self.dead_letters is not None else 0
            if not pending and self.throttle.since is None:
                return

    async def aclose(self) -> None:
        """Stop settling; write what is buffered and sum up what was not logged."""
        if self._settling is not None:
            self._settling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settling
        if self.dead_letters is not None:
            await self.dead_letters.flush()
        self._summarize(time.monotonic(), force=True)
