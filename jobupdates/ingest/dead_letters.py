"""The dead-letter list in Redis: rejected messages, newest first, capped.

:class:`DeadLetterWriter` is the bridge's side: it buffers entries (encoded
by :mod:`jobupdates.protocol.dead_letters`) and writes each batch with one
``MULTI``/``LPUSH``/``LTRIM``/``EXEC`` round trip, so a flood of bad messages
costs one round trip per :data:`BATCH` of them. A failed write is logged and
counted, never raised: dead letters must not stop the bridge.

:func:`read_dead_letters` is the readers' side (``/ws/stats`` and the admin).
"""

from __future__ import annotations

import asyncio
import collections
import logging

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobupdates.protocol.dead_letters import DeadLetter, decode_dead_letter

__all__ = ["BATCH", "DeadLetterWriter", "read_dead_letters"]

logger = logging.getLogger(__name__)

BATCH = 100
"""Entries buffered before the rejection path writes them at once."""
WRITE_TIMEOUT = 2.0
"""Seconds one batch write may take before it is given up (and logged)."""


class DeadLetterWriter:
    """Buffers dead letters and writes them to a capped Redis list."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key: str,
        size: int,
        batch: int = BATCH,
        timeout: float = WRITE_TIMEOUT,
    ) -> None:
        """Args:
        client: The Redis to write to.
        key: The list's key.
        size: How many entries the list keeps (the newest).
        batch: How many buffered entries make :meth:`add` ask for a flush.
        timeout: Seconds one write may take.
        """
        self.client = client
        self.key = key
        self.size = size
        self.batch = batch
        self.timeout = timeout
        self._buffer: collections.deque[str] = collections.deque(maxlen=size)
        self.written = 0
        """Entries written so far."""
        self.failed = 0
        """Entries whose write failed (each failure is logged)."""

    @property
    def pending(self) -> int:
        """Entries buffered and not yet written."""
        return len(self._buffer)

    def add(self, letter: DeadLetter) -> bool:
        """Buffer ``letter``; return True once a batch is ready for :meth:`flush`.

        The buffer holds at most ``size`` entries: older ones would be trimmed
        from the list anyway.
        """
        self._buffer.append(letter.to_json())
        return len(self._buffer) >= self.batch

    async def flush(self) -> None:
        """Write every buffered entry in one round trip; log a failure, never raise."""
        if not self._buffer:
            return
        entries = list(self._buffer)
        self._buffer.clear()
        try:
            async with asyncio.timeout(self.timeout):
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.lpush(self.key, *entries)
                    pipe.ltrim(self.key, 0, self.size - 1)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed += len(entries)
            logger.warning(
                "could not write %d dead letter(s) to %r (%s: %s); they are counted, not kept",
                len(entries),
                self.key,
                type(exc).__name__,
                exc,
            )
            return
        self.written += len(entries)


def read_dead_letters(client: redis.Redis, key: str, count: int) -> tuple[list[DeadLetter], int]:
    """Return the newest ``count`` dead letters and how many the list holds (one round trip).

    Entries that cannot be decoded are skipped.

    Raises:
        redis.exceptions.RedisError: If Redis cannot be read.
    """
    with client.pipeline(transaction=False) as pipe:
        pipe.lrange(key, 0, count - 1)
        pipe.llen(key)
        raw, total = pipe.execute()
    letters = [letter for item in raw if (letter := decode_dead_letter(item)) is not None]
    return letters, int(total)
