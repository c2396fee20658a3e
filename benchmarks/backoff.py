"""Come back later, as ``jobupdates.js`` does when the server says it is busy.

A server that admits only so many handshakes at once refuses the rest with an
``error`` frame (``server_busy``) and close code 4503 (come back later). The
page's client then reconnects after a delay drawn uniformly from
``[0, min(30 s, 0.5 s * 2**attempt)]`` ("full jitter"; ``attempt`` is 0 for the
first retry). The storm's generator does the same for that refusal only; any
other failure stays a failure.
"""

from __future__ import annotations

import random

__all__ = [
    "BUSY_CLOSE_CODE",
    "MAX_ATTEMPTS",
    "ServerBusyError",
    "delay",
    "worst_case_seconds",
]

BUSY_CLOSE_CODE = 4503
"""Try Again Later: the server's refusal of a handshake it had no turn for."""
INITIAL_CEILING = 0.5
"""Seconds: the ceiling of the first retry's delay (``backoffInitial``)."""
MAX_CEILING = 30.0
"""Seconds: the largest ceiling (``backoffMax``)."""
MAX_ATTEMPTS = 20
"""Attempts per client in the storm (the first one included) before it fails."""


class ServerBusyError(ConnectionError):
    """The server closed the connection with 4503 before its welcome."""


def ceiling(retry: int) -> float:
    """The largest delay before retry number ``retry`` (0 for the first)."""
    return min(MAX_CEILING, INITIAL_CEILING * 2 ** min(retry, 30))


def delay(retry: int) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first): full jitter."""
    return random.uniform(0.0, ceiling(retry))


def worst_case_seconds(attempts: int, per_attempt: float) -> float:
    """The longest ``attempts`` attempts of ``per_attempt`` seconds each can take,
    the delays between them included."""
    return attempts * per_attempt + sum(ceiling(retry) for retry in range(attempts - 1))
