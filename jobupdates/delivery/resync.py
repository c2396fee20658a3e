"""Closing the gap when a server process's Redis subscription drops and comes back.

While a process's pub/sub connection is down, its clients miss the updates
published meanwhile, even though Redis (and the bridge) kept working. When
the channel layer re-subscribes it holds every attached feed back and calls
:func:`resync`, which reads the history once for the whole process and
replays to each feed what it has not seen, then lets live updates through.
If the history cannot prove it covers the gap, each client gets a ``reset``
instead of a silent gap; if Redis lost its data (restarted without
persistence), the reset is followed by every update recorded since.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from contextlib import aclosing

from redis.exceptions import RedisError

from jobupdates.delivery.feed import Feed
from jobupdates.history import History
from jobupdates.protocol.positions import Position, ResetReason
from jobupdates.redis_client import async_client

__all__ = ["GAP_MARGIN_SECONDS", "Plan", "plan_resync", "resync"]

logger = logging.getLogger(__name__)

GAP_MARGIN_SECONDS = 2.0
"""How far before the detected loss the replay starts (clock skew, read latency)."""
BEFORE_ALL = Position(0, 0)
"""Before every position (Redis's first stream ID is ``0-1``): replay all there is."""


async def resync(feeds: Sequence[Feed], gap_started: float) -> None:
    """Replay to ``feeds`` (held back) what was recorded since ``gap_started``, then go live.

    Each feed resumes after the last update it sent, or from the loss (less
    :data:`GAP_MARGIN_SECONDS`) if that is later: until the loss, the live
    subscription gave it everything. The history is read once, a page at a
    time, from the earliest of those points (see :func:`plan_resync`).

    Args:
        feeds: The feeds of this process, each held back since the re-subscription.
        gap_started: When the subscription was lost (Unix time).
    """
    gap = Position(max(0, int((gap_started - GAP_MARGIN_SECONDS) * 1000)), 0)
    pending: dict[Feed, Position] = {feed: max(feed.resume_point(gap), gap) for feed in feeds}
    read = resets = 0

    async def reset(reason: ResetReason, which: Sequence[Feed], *, drop: bool = True) -> None:
        nonlocal resets
        for feed in which:
            if drop:
                del pending[feed]
            resets += 1
            await feed.send_reset(reason, "updates may have been missed; reload the state")

    history = History.from_conf(async_client())
    try:
        oldest, newest = await history.bounds()
        for feed, start in list(pending.items()):
            plan = plan_resync(start, oldest, newest)
            if plan is Plan.RESET:
                await reset(ResetReason.GAP_NOT_COVERED, [feed])
            elif plan is Plan.RESET_THEN_ALL:
                await reset(ResetReason.GAP_NOT_COVERED, [feed], drop=False)
                pending[feed] = BEFORE_ALL
        if pending:
            first = min(pending.values())
            async with aclosing(history.pages(None if first == BEFORE_ALL else first)) as pages:
                async for page in pages:
                    if page.reset is not None:  # trimmed while reading
                        await reset(ResetReason.GAP_NOT_COVERED, list(pending))
                        break
                    read += len(page.entries)
                    for feed, after in pending.items():
                        await feed.replay(entry for entry in page.entries if entry.position > after)
    except (RedisError, OSError) as exc:
        logger.warning(
            "cannot replay the subscription gap to %d clients (%s: %s)",
            len(pending),
            type(exc).__name__,
            exc,
        )
        await reset(ResetReason.HISTORY_UNAVAILABLE, list(pending))
    finally:
        for feed in feeds:
            if not feed.overflowed:
                await feed.go_live()
    logger.info(
        "replayed the subscription gap to %d clients: %d updates read, %d resets",
        len(feeds),
        read,
        resets,
    )


class Plan(enum.Enum):
    """What re-subscribing does for one feed."""

    REPLAY = "replay"
    """The history covers the feed's point: replay what follows it."""
    RESET = "reset"
    """The history holds nothing to go on (empty, or behind the point): a ``reset``."""
    RESET_THEN_ALL = "reset_then_all"
    """The history begins after the point: a ``reset`` for what is missing before
    it, then all of it (the feed has seen none of it: positions only grow)."""


def plan_resync(start: Position, oldest: Position | None, newest: Position | None) -> Plan:
    """Decide what a feed that resumes after ``start`` gets from a history that holds
    ``oldest`` to ``newest``.

    ``start`` is never before the loss of the subscription, so a history that
    begins after it began during the gap: Redis lost its data (restarted
    without persistence) and holds only updates recorded since, which no
    feed of this process has seen. Those are replayed after the ``reset``,
    so nothing accepted after the restart is lost.
    """
    if oldest is None or newest is None or start > newest:
        return Plan.RESET
    if start < oldest:
        return Plan.RESET_THEN_ALL
    return Plan.REPLAY
