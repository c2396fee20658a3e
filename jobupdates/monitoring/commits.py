"""Group commit: one write for every change that arrives while another write is in flight.

The registry writes a record to Redis on every connect and disconnect. One
round trip each is right when they are rare; in a reconnect storm (a deploy,
thousands of handshakes at once) it was a fifth of the server's CPU per
handshake. :class:`GroupCommit` runs a write for whatever is pending, one
write at a time: the changes that arrive while one is in flight wait for the
next, which takes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["GroupCommit"]


class GroupCommit:
    """Calls ``write`` for what is pending; ``await commit()`` returns once a write that
    started after the call has ended (``write`` must not raise: it logs its failures)."""

    __slots__ = ("_next", "_running", "_write")

    def __init__(self, write: Callable[[], Awaitable[object]]) -> None:
        self._write = write
        self._next: list[asyncio.Future[None]] = []  # the callers the next write releases
        self._running: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        """Wait for the next write; a cancelled caller does not cancel it."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()  # one per caller: cancelling it cancels nobody else's
        self._next.append(done)
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._run())
        await done

    async def _run(self) -> None:
        batch: list[asyncio.Future[None]] = []
        try:
            while self._next:
                batch, self._next = self._next, []  # callers from now on wait for the next
                await self._write()
                _release(batch)
        finally:  # also when cancelled (the loop is closing): release every waiter
            _release(batch)
            _release(self._next)


def _release(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
