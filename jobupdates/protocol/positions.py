"""Positions in the update history, and the recovery decision after a reconnect.

Pure: no Django, asyncio or I/O. A position is the Redis Stream ID of the
history entry the bridge wrote for an update (``"<ms>-<seq>"``), so positions
are totally ordered and grow across bridge restarts and failovers.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = [
    "MAX_PART",
    "Position",
    "PositionError",
    "ResetReason",
    "as_state",
    "plan_recovery",
    "with_position",
]

_POSITION_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
MAX_PART = 2**64 - 1
"""The largest part of a Redis Stream ID: each is an unsigned 64-bit integer."""
_UPDATE_PREFIX = '{"type":"job_update",'
_STATE_PREFIX = '{"type":"job_state",'


class PositionError(ValueError):
    """Text that is not a position."""


class ResetReason(enum.StrEnum):
    """Why a client cannot resume and must reload its state."""

    INVALID_POSITION = "invalid_position"
    UNKNOWN_POSITION = "unknown_position"
    POSITION_TOO_OLD = "position_too_old"
    POSITION_LOST = "position_lost"
    """The history no longer holds the update the client saw last: Redis lost its
    newest writes (a failover to a replica that had not received them yet)."""
    HISTORY_UNAVAILABLE = "history_unavailable"
    """Redis did not answer while the server read the history."""
    GAP_NOT_COVERED = "gap_not_covered"
    """The server's subscription dropped and the history cannot prove it covers the gap."""
    UPDATES_LOST = "updates_lost"
    """The history records a gap at this position: a bridge took over without being able
    to prove it held every update the old one had not recorded."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A Redis Stream ID, ordered as Redis orders them."""

    ms: int
    seq: int

    @classmethod
    def parse(cls, text: str | bytes) -> Position:
        """Parse ``"<ms>-<seq>"``, two decimal parts of at most ``2**64 - 1`` each.

        Raises:
            PositionError: If ``text`` is not of that form, or a part is too large
                for Redis (which would answer the read with an error).
        """
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        found = _POSITION_RE.fullmatch(text)
        if found is None:
            raise PositionError(f"expected a position like '1732570000000-0', got {text!r:.40}")
        ms, seq = int(found.group(1)), int(found.group(2))
        if ms > MAX_PART or seq > MAX_PART:
            raise PositionError(
                f"expected a position like '1732570000000-0' with parts of at most "
                f"{MAX_PART}, got {text!r:.45}"
            )
        return cls(ms, seq)

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


def plan_recovery(
    since: Position,
    oldest: Position | None,
    newest: Position | None,
    *,
    held: bool = True,
    lost: Position | None = None,
) -> ResetReason | None:
    """Decide whether the history can replay everything after ``since``.

    Args:
        since: The last position the client saw.
        oldest: The oldest entry still in the history, or None if it is empty.
        newest: The newest entry in the history, or None if it is empty.
        held: Whether the history holds ``since`` itself. A position a client
            saw that is within the history's range but not in it was lost
            (positions only ever leave from the oldest end): what came after it
            may have been lost too, and newer entries would hide the gap.
        lost: The newest position Redis is known to have lost, if any: updates
            up to it may be missing after any ``since`` before it.

    Returns:
        None if replaying the entries after ``since`` leaves no gap; else why not.
        Never a partial replay: an entry older than ``oldest`` may have been
        trimmed, and a position newer than ``newest`` belongs to a history this
        one does not hold (Redis lost its data).
    """
    if oldest is None or newest is None or since > newest:
        return ResetReason.UNKNOWN_POSITION
    if since < oldest:
        return ResetReason.POSITION_TOO_OLD
    if not held or (lost is not None and since < lost):
        return ResetReason.POSITION_LOST
    return None


def with_position(frame: str, position: str) -> str:
    """Add ``"position"`` to a JSON object frame, as its last field."""
    return f'{frame[:-1]},"position":"{position}"}}'


def as_state(frame: str) -> str:
    """Turn a ``job_update`` frame into the ``job_state`` frame sent on subscribe."""
    if not frame.startswith(_UPDATE_PREFIX):
        raise ValueError(f"expected a frame starting {_UPDATE_PREFIX!r}, got {frame[:30]!r}")
    return _STATE_PREFIX + frame[len(_UPDATE_PREFIX) :]
