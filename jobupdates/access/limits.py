"""Per-connection limits, as pure state machines (the caller passes the time).

:class:`TokenBucket` limits the inbound message rate; :class:`Strikes` counts
bad frames so that a client that keeps sending them can be closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Strikes", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``.

    Attributes:
        rate: Tokens added per second.
        burst: The bucket's size: how many messages may arrive at once.
    """

    rate: float
    burst: float
    _tokens: float = field(init=False)
    _updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"expected rate > 0 and burst >= 1, got {self.rate}, {self.burst}")
        self._tokens = self.burst

    def take(self, now: float) -> bool:
        """Spend one token at time ``now`` (seconds, monotonic); False if there is none."""
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass(slots=True)
class Strikes:
    """Counts offences; :meth:`add` says when the limit is reached."""

    limit: int
    count: int = 0

    def add(self) -> bool:
        """Record one offence; True once ``limit`` offences were recorded."""
        self.count += 1
        return self.count >= self.limit
