"""Closing the gap when a server process's Redis subscription drops and comes back.

While a process's pub/sub connection is down, its clients miss the updates
published meanwhile, even though Redis (and the bridge) kept working. When
the channel layer re-subscribes it holds every attached feed back and calls
:func:`resync`, which reads the history once for the whole process and
replays to each feed what it has not seen, then lets live updates through.
If the history cannot prove it covers the gap (it was trimmed, or Redis lost
its data), each client gets a ``reset`` instead of a silent gap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.exceptions import RedisError

from jobupdates.feed import Feed
from jobupdates.history import History, ReplayEntry
from jobupdates.protocol.positions import Position, ResetReason
from jobupdates.redis_client import async_client

__all__ = ["GAP_MARGIN_SECONDS", "resync"]

logger = logging.getLogger(__name__)

GAP_MARGIN_SECONDS = 2.0
"""How far before the detected loss the replay starts (clock skew, read latency)."""


async def resync(feeds: Sequence[Feed], gap_started: float) -> None:
    """Replay to ``feeds`` (held back) what was recorded since ``gap_started``, then go live.

    Each feed resumes after the last update it sent, or from the loss (less
    :data:`GAP_MARGIN_SECONDS`) if it sent none. The history is read once, from
    the earliest of those points.

    Args:
        feeds: The feeds of this process, each held back since the re-subscription.
        gap_started: When the subscription was lost (Unix time).
    """
    gap = Position(max(0, int((gap_started - GAP_MARGIN_SECONDS) * 1000)), 0)
    starts = [feed.resume_point(gap) for feed in feeds]
    entries: tuple[ReplayEntry, ...] = ()
    oldest: Position | None = None
    failed = False
    try:
        recovery = await History.from_conf(async_client()).since(min(starts))
    except (RedisError, OSError) as exc:
        failed = True
        logger.warning("cannot replay the subscription gap to %d clients: %s", len(feeds), exc)
    else:
        entries, oldest = recovery.entries, recovery.oldest
    resets = 0
    for feed, start in zip(feeds, starts, strict=True):
        try:
            if failed or oldest is None or start < oldest:  # trimmed, or Redis lost its data
                resets += 1
                reason = ResetReason.HISTORY_UNAVAILABLE if failed else ResetReason.GAP_NOT_COVERED
                await feed.send_reset(reason, "updates may have been missed; reload the state")
            else:
                await feed.replay(entry for entry in entries if entry.position > start)
        finally:
            await feed.go_live()
    logger.info(
        "replayed the subscription gap to %d clients: %d updates read, %d resets",
        len(feeds),
        len(entries),
        resets,
    )
