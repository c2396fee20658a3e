"""The bridge's one ordered intake: both inputs validated, recorded and sent in one order.

Two inputs feed a bridge: the workers' PUBLISHes (:mod:`jobupdates.ingest.bridge`)
and the durable ingest stream (:mod:`jobupdates.ingest.durable`), plus the ring
it forwards on a takeover (:mod:`jobupdates.ingest.takeover`). They run as
separate tasks; :class:`Intake` is what they share, so that none of them reaches
into another:

* :meth:`Intake.accept` validates one payload and encodes its frame, once; a
  rejection (``unencodable`` included) is counted,
  logged (throttled) and kept as a dead letter
  (:mod:`jobupdates.ingest.rejections`);
* :meth:`Intake.forward` records a batch and sends it with no other batch in
  between (one lock), so positions grow in the order every server process
  receives them; it counts what it forwarded, once, for every input; and a
  write the history refuses (the lease moved on) deposes the bridge.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from jobupdates.history import Fence
from jobupdates.ingest.counters import BridgeStats
from jobupdates.ingest.forwarder import Batch, Forwarder, Outcome
from jobupdates.ingest.rejections import Rejections
from jobupdates.protocol import DEFAULT_STATUSES, InvalidJobUpdate, JobUpdate, parse_job_update

__all__ = ["Intake"]


class Intake:
    """Validation, recording and sending, shared by a bridge's inputs."""

    def __init__(
        self,
        forwarder: Forwarder,
        rejections: Rejections,
        stats: BridgeStats,
        *,
        statuses: tuple[str, ...] = DEFAULT_STATUSES,
        max_payload_bytes: int = 1024 * 1024,
        fence: Callable[[], Fence | None] = lambda: None,
        on_fenced: Callable[[], None] = lambda: None,
    ) -> None:
        """Args:
        forwarder: Records and sends.
        rejections: Where rejected payloads go.
        stats: The bridge's counters.
        statuses: The statuses accepted (``JOBUPDATES_STATUSES``).
        max_payload_bytes: The largest payload accepted.
        fence: The lease each write requires now (None: no lease).
        on_fenced: Called when the history refused a write: the bridge is deposed.
        """
        self.forwarder = forwarder
        self.rejections = rejections
        self.stats = stats
        self.statuses = statuses
        self.max_payload_bytes = max_payload_bytes
        self.fence = fence
        self.on_fenced = on_fenced
        self.waiting = 0
        """Batches waiting for their turn (another batch is being recorded and sent)."""
        self._lock = asyncio.Lock()

    def received(self, count: int) -> float:
        """Count ``count`` messages received now; return the time (Unix)."""
        now = time.time()
        self.stats.received += count
        self.stats.last_message_at = now
        return now

    async def accept(
        self, payload: bytes, received_at: float, *, keep: bool
    ) -> tuple[JobUpdate, str] | None:
        """Parse one payload and encode its client frame, once; on a rejection, count it
        and hand it to the rejections (kept as a dead letter if ``keep``) and return None."""
        try:
            update = parse_job_update(
                payload, statuses=self.statuses, max_bytes=self.max_payload_bytes
            )
            return update, update.to_frame()
        except InvalidJobUpdate as exc:
            await self.reject(exc, payload, received_at, keep=keep)
            return None

    async def reject(
        self, exc: InvalidJobUpdate, payload: bytes, received_at: float, *, keep: bool
    ) -> None:
        """Count, log and (if ``keep``) keep a payload no update could come from."""
        self.stats.rejected[exc.reason] += 1
        await self.rejections.reject(exc, payload, received_at, keep=keep)

    async def forward(self, batch: Batch) -> Outcome:
        """Record and send ``batch``, with no other batch in between; count it if sent."""
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        try:
            outcome = await self.forwarder.forward(batch, self.fence())
        finally:
            self._lock.release()
        if outcome is Outcome.SENT:
            stats = self.stats
            stats.forwarded += len(batch.updates)
            if batch.recovered:
                stats.recovered += len(batch.updates)
            for update, _ in batch.updates:
                stats.forwarded_by_status[update.status] += 1
        elif outcome is Outcome.FENCED:
            self.on_fenced()
        return outcome

    async def aclose(self) -> None:
        """Flush the rejections' summary."""
        await self.rejections.aclose()
