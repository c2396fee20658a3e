"""Catching one connection up: replay what it missed, send its jobs' states, go live.

The I/O glue between a connection's :class:`~jobupdates.delivery.feed.Feed` and the
:class:`~jobupdates.history.History`. Both reads are paged, and every frame
goes through the feed's backlog bound, so a client that does not read is
dropped as slow (4408) after about ``JOBUPDATES_MAX_BACKLOG_BYTES``, however
long the history: nothing more is read for it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import aclosing

from redis.exceptions import RedisError

from jobupdates.delivery.feed import Feed
from jobupdates.history import History
from jobupdates.protocol.positions import Position, PositionError, ResetReason
from jobupdates.redis_client import async_client

__all__ = ["STATES_PAGE", "catch_up"]

logger = logging.getLogger(__name__)

STATES_PAGE = 16
"""Job states read in one round trip."""
MISSED = "updates were missed; reload the current state"
UNAVAILABLE = "the update history could not be read; reload the current state"


async def catch_up(feed: Feed, since: str | None, jobs: Sequence[str], *, client: str) -> None:
    """Replay after ``since`` (if given), send the states of ``jobs``, then go live.

    A feed that overflows on the way stays held: it sends nothing more, and
    its consumer is closing it. Redis errors become a ``reset`` frame
    (``history_unavailable``) whose text never carries Redis's own.

    Args:
        feed: The connection's feed, holding live updates back.
        since: The position the client resumes after, as it sent it.
        jobs: The jobs whose latest states to send.
        client: The client id, for log lines.
    """
    if since is not None or jobs:  # most connections have nothing to catch up on
        await _read_history(feed, since, jobs, client)
    if not feed.overflowed:
        await feed.go_live()


async def _read_history(feed: Feed, since: str | None, jobs: Sequence[str], client: str) -> None:
    history = History.from_conf(async_client())
    try:
        if since is not None:
            await _replay(feed, history, since)
        for start in range(0, len(jobs), STATES_PAGE):
            if feed.overflowed:
                break
            await feed.send_states(await history.states(jobs[start : start + STATES_PAGE]))
    except (RedisError, OSError) as exc:
        logger.warning("client %s: history unavailable (%s: %s)", client, type(exc).__name__, exc)
        await feed.send_reset(ResetReason.HISTORY_UNAVAILABLE, UNAVAILABLE)


async def _replay(feed: Feed, history: History, since: str) -> None:
    try:
        position = Position.parse(since)
    except PositionError as exc:
        await feed.send_reset(ResetReason.INVALID_POSITION, str(exc))
        return
    async with aclosing(history.pages(position, seen=True)) as pages:
        async for page in pages:
            if page.reset is not None:
                await feed.send_reset(page.reset, MISSED)
                return
            await feed.replay(page.entries)
            if feed.overflowed:
                return
