"""Per-process delivery counters, cheap enough for the hot path.

The layer's fast path calls :meth:`DeliveryCounters.fanout` once per job
update per process (not per client): an addition and, when the event carries
the bridge's receipt time (``JobUpdateEvent.received_at``), one list append.
(Each client's own count is its feed's ``sent``.) The registry's batched
refresh drains the latencies into the Prometheus histogram once per interval.
"""

from __future__ import annotations

import time

__all__ = ["MAX_PENDING_LATENCIES", "DeliveryCounters", "counters"]

MAX_PENDING_LATENCIES = 100_000
"""Latencies kept between two refreshes; later ones are counted as dropped."""


class DeliveryCounters:
    """What this process delivered since it started.

    Attributes:
        deliveries: Frames written to clients (fast path and ordinary path).
        latencies: Seconds from bridge receipt to the last local send, per
            fan-out, not yet drained.
        dropped_latencies: Latencies not kept because too many were pending.
    """

    __slots__ = ("deliveries", "dropped_latencies", "latencies")

    def __init__(self) -> None:
        self.deliveries = 0
        self.latencies: list[float] = []
        self.dropped_latencies = 0

    def fanout(self, delivered: int, received_at: float | None) -> None:
        """Count one job update written to ``delivered`` local clients.

        ``received_at`` is when the bridge received it (Unix time), if known.
        """
        self.deliveries += delivered
        self._latency(received_at)

    def direct(self, received_at: float | None) -> None:
        """Count one job update relayed by a consumer's ordinary handler."""
        self.deliveries += 1
        self._latency(received_at)

    def _latency(self, received_at: float | None) -> None:
        if received_at is not None:
            if len(self.latencies) < MAX_PENDING_LATENCIES:
                self.latencies.append(max(0.0, time.time() - received_at))
            else:
                self.dropped_latencies += 1

    def drain_latencies(self) -> list[float]:
        """Return and forget the latencies recorded since the last drain."""
        drained, self.latencies = self.latencies, []
        return drained


counters = DeliveryCounters()
"""This process's counters."""
