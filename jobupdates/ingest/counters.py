"""What a bridge counts while it runs, for its report (:mod:`jobupdates.ingest.report`)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from jobupdates.protocol import RejectReason

__all__ = ["BridgeStats"]


@dataclass
class BridgeStats:
    """Counters of what the bridge has seen since it started."""

    received: int = 0
    forwarded: int = 0
    forwarded_by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    rejected: collections.Counter[RejectReason] = field(default_factory=collections.Counter)
    skipped_as_standby: int = 0
    reconnects: int = 0
    last_message_at: float | None = None
    recovered: int = 0
    """Updates forwarded from the ring on a takeover (the old bridge never recorded them)."""
    gaps: int = 0
    """Takeovers whose ring could not cover what the old bridge may not have recorded."""
    primary: str = ""
    """The Redis ``host:port`` it listens on (with Sentinel, the primary named)."""
    failovers: int = 0
    """Times that address changed while it ran."""

    def listening_at(self, primary: str) -> bool:
        """Record the address it subscribed at; return whether it changed (a failover)."""
        changed = bool(self.primary) and primary != self.primary
        self.failovers += changed
        self.primary = primary
        return changed
