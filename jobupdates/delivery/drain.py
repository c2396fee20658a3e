"""When a stopping server closes each client: the drain's schedule.

Pure: no I/O, no clock. On SIGTERM or SIGINT, a Daphne process started
through :mod:`jobupdates.delivery.drain_server` closes its WebSocket clients
(``server_restarting``, then close 1012) spread evenly over
``JOBUPDATES_DRAIN_SECONDS``, so they do not all reconnect to the other
processes in the same instant. :class:`CloseSchedule` says how many clients
should be closed after a given time, and when the next one is due.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SETTLE_SECONDS", "CloseSchedule", "restarting_message"]

SETTLE_SECONDS = 5.0
"""At most this long after the last close, the drain waits for the closing
handshakes and for the consumers to finish their disconnect (registry,
admission); what is still running then is cancelled by Daphne."""


@dataclass(frozen=True, slots=True)
class CloseSchedule:
    """``total`` closes spread evenly over ``seconds``: the first at once, the
    last at ``seconds * (total - 1) / total``; all at once when ``seconds`` is 0.
    """

    total: int
    seconds: float

    def __post_init__(self) -> None:
        if self.total < 0 or self.seconds < 0:
            raise ValueError(
                "expected a non-negative number of clients and of seconds, "
                f"got {self.total} clients over {self.seconds:g} s"
            )

    def due(self, elapsed: float) -> int:
        """Return how many clients should be closed ``elapsed`` seconds into the drain."""
        if self.total == 0:
            return 0
        if self.seconds == 0 or elapsed >= self.seconds:
            return self.total
        due = min(self.total, math.floor(self.total * max(elapsed, 0.0) / self.seconds) + 1)
        # Agree with at() to the last bit, whatever the float rounding above did.
        while due < self.total and self.at(due) <= elapsed:
            due += 1
        while due > 1 and self.at(due - 1) > elapsed:
            due -= 1
        return due

    def at(self, index: int) -> float:
        """Return when (seconds into the drain) the client at ``index`` (from 0) is due."""
        if not 0 <= index < self.total:
            raise ValueError(f"expected a client index in [0, {self.total}), got {index}")
        return self.seconds * index / self.total


def restarting_message(seconds: float) -> str:
    """The ``server_restarting`` error frame's message."""
    spread = f", spread over {seconds:g} s" if seconds else ""
    return (
        f"this server process is stopping (deploy or restart{spread}); "
        "reconnect with since=<last position>"
    )
