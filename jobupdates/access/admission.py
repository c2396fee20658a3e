"""Connection limits of one server process: in total, and per user.

Pure bookkeeping, no I/O: the consumer asks :meth:`Admission.admit` before it
accepts a connection and calls :meth:`Admission.release` when it ends.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from jobupdates.protocol import ErrorCode

__all__ = ["Admission", "admission"]


@dataclass
class Admission:
    """Counts this process's connections, in total and per user."""

    total: int = 0
    per_user: collections.Counter[str] = field(default_factory=collections.Counter)

    def admit(self, user_key: str | None, *, max_total: int, max_per_user: int) -> ErrorCode | None:
        """Count a new connection, or return why it is refused (nothing is counted then).

        Args:
            user_key: Who connects; None for an anonymous client (no per-user limit).
            max_total: The process's limit.
            max_per_user: The per-user limit.
        """
        if self.total >= max_total:
            return ErrorCode.SERVER_FULL
        if user_key is not None and self.per_user[user_key] >= max_per_user:
            return ErrorCode.TOO_MANY_CONNECTIONS
        self.total += 1
        if user_key is not None:
            self.per_user[user_key] += 1
        return None

    def release(self, user_key: str | None) -> None:
        """Forget a connection that :meth:`admit` counted."""
        self.total -= 1
        if user_key is not None:
            self.per_user[user_key] -= 1
            if self.per_user[user_key] <= 0:
                del self.per_user[user_key]


admission = Admission()
"""This process's counts."""
