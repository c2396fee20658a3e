"""Reading from the history what a server process missed, for all its connections at once.

A server process hands its connections the history's sequence of updates in
position order (:class:`~jobupdates.protocol.sequence.Sequencer`). It can miss
some of it in two ways:

* an event arrives naming a predecessor it never got (a bridge died between
  recording and sending, or a layer message was lost): the entries between
  are read before that event is delivered;
* its Redis subscription dropped and came back (a Redis restart, a network
  blip): the entries recorded since the last one it delivered, or since the
  loss less :data:`GAP_MARGIN_SECONDS`, are read at once.

Either way :func:`missed` reads the history once for the whole process, a
page at a time, and yields what to deliver, in order. When the history
cannot prove it covers the gap, it yields a ``reset`` reason first (never a
silent gap); when it begins after the point (Redis lost its data), the reset
is followed by everything it holds, so nothing accepted since is lost.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from contextlib import aclosing

from jobupdates.history import History, ReplayEntry
from jobupdates.protocol.positions import Position, ResetReason

__all__ = ["GAP_MARGIN_SECONDS", "ORIGIN", "Plan", "missed", "plan_resync", "resume_after"]

GAP_MARGIN_SECONDS = 2.0
"""How far before a detected loss of the subscription the replay starts (clock skew,
read latency), when the process had delivered nothing later."""
ORIGIN = Position(0, 0)
"""Before every position (Redis's first stream ID is ``0-1``): where a process whose
history was empty when it subscribed starts; it has missed nothing before."""


class Plan(enum.Enum):
    """What a server process does about what it may have missed."""

    REPLAY = "replay"
    """The history covers the point: replay what follows it."""
    RESET = "reset"
    """The history holds nothing to go on (empty, or behind the point): a ``reset``."""
    RESET_THEN_ALL = "reset_then_all"
    """The history begins after the point: a ``reset`` for what is missing before
    it, then all of it (the process has delivered none of it: positions only grow)."""


def plan_resync(start: Position, oldest: Position | None, newest: Position | None) -> Plan:
    """Decide what a process that delivered everything up to ``start`` gets from a
    history that holds ``oldest`` to ``newest``.

    A history that begins after ``start`` began during the gap: Redis lost its
    data (restarted without persistence) and holds only updates recorded since,
    which the process has not delivered. Those are replayed after the ``reset``.
    From :data:`ORIGIN`, everything the history holds is replayed: nothing came before.
    """
    if start == ORIGIN:
        return Plan.REPLAY
    if oldest is None or newest is None or start > newest:
        return Plan.RESET
    if start < oldest:
        return Plan.RESET_THEN_ALL
    return Plan.REPLAY


def resume_after(last: Position | None, lost_at: float) -> Position:
    """Where a process that re-subscribed resumes: after the last update it delivered,
    or after the loss less :data:`GAP_MARGIN_SECONDS` if that is later (until the loss,
    the live subscription gave it everything)."""
    gap = Position(max(0, int((lost_at - GAP_MARGIN_SECONDS) * 1000)), 0)
    return gap if last is None else max(last, gap)


async def missed(
    history: History, after: Position, upto: Position | None = None
) -> AsyncGenerator[ReplayEntry | ResetReason, None]:
    """Yield the entries recorded after ``after`` (up to ``upto``, if given), oldest
    first, with a :class:`ResetReason` where they cannot all be (see :class:`Plan`).

    Raises:
        RedisError, OSError: If the history cannot be read.
    """
    oldest, newest = await history.bounds()
    plan = plan_resync(after, oldest, newest)
    if plan is not Plan.REPLAY:
        yield ResetReason.GAP_NOT_COVERED
        if plan is Plan.RESET:
            return
    start = after if plan is Plan.REPLAY and after != ORIGIN else None
    async with aclosing(history.pages(start)) as pages:
        async for page in pages:
            if page.reset is not None:  # trimmed while reading
                yield ResetReason.GAP_NOT_COVERED
                return
            for entry in page.entries:
                if upto is not None and entry.position > upto:
                    return
                yield entry
