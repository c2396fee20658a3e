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
from contextlib import aclosing

from redis.exceptions import RedisError

from jobupdates.delivery.feed import Feed
from jobupdates.history import History
from jobupdates.protocol.positions import Position, ResetReason
from jobupdates.redis_client import async_client

__all__ = ["GAP_MARGIN_SECONDS", "resync"]

logger = logging.getLogger(__name__)

GAP_MARGIN_SECONDS = 2.0
"""How far before the detected loss the replay starts (clock skew, read latency)."""


async def resync(feeds: Sequence[Feed], gap_started: float) -> None:
    """Replay to ``feeds`` (held back) what was recorded since ``gap_started``, then go live.

    Each feed resumes after the last update it sent, or from the loss (less
    :data:`GAP_MARGIN_SECONDS`) if it sent none. The history is read once, a
    page at a time, from the earliest of those points that it still covers;
    a feed whose point it does not cover gets a ``reset``.

    Args:
        feeds: The feeds of this process, each held back since the re-subscription.
        gap_started: When the subscription was lost (Unix time).
    """
    gap = Position(max(0, int((gap_started - GAP_MARGIN_SECONDS) * 1000)), 0)
    pending = {feed: feed.resume_point(gap) for feed in feeds}
    read = resets = 0

    async def reset(reason: ResetReason, which: Sequence[Feed]) -> None:
        nonlocal resets
        for feed in which:
            del pending[feed]
            resets += 1
            await feed.send_reset(reason, "updates may have been missed; reload the state")

    history = History.from_conf(async_client())
    try:
        oldest, newest = await history.bounds()
        # trimmed past a feed's point, or a point this history never held (Redis lost its data)
        uncovered = [
            feed
            for feed, start in pending.items()
            if oldest is None or newest is None or not oldest <= start <= newest
        ]
        await reset(ResetReason.GAP_NOT_COVERED, uncovered)
        if pending:
            async with aclosing(history.pages(min(pending.values()))) as pages:
                async for page in pages:
                    if page.reset is not None:  # trimmed while reading
                        await reset(ResetReason.GAP_NOT_COVERED, list(pending))
                        break
                    read += len(page.entries)
                    for feed, start in pending.items():
                        await feed.replay(entry for entry in page.entries if entry.position > start)
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
