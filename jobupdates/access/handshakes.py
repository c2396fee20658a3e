"""Admission at the handshake: a bound on the handshakes a process works on at once.

A process that starts every handshake it is offered finishes none of them in
a storm (10,000 clients reconnecting after a deploy): each advances a little
at a time, and nearly all pass Daphne's 5 s ``websocket_connect_timeout``
before the consumer accepts, so Daphne refuses them with a bare 403 (2 of
10,000 got in; docs/performance.md). :class:`HandshakeGate` lets
``JOBUPDATES_MAX_HANDSHAKES`` proceed, in arrival order; the others wait up
to ``JOBUPDATES_HANDSHAKE_WAIT`` seconds for a turn, then are told to come
back (``server_busy``, close 4503, as when the process is full: Daphne's
WebSocket library refuses to send 1013), which ``jobupdates.js`` does with jittered
backoff. The process spends its time finishing handshakes, not abandoning them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from jobupdates.protocol import CloseCode, ErrorCode, error_frame
from jobupdates.protocol.encodings import asgi_send, negotiate

__all__ = ["BUSY_MESSAGE", "HANDSHAKE_DONE", "HandshakeGate", "refuse_busy"]

logger = logging.getLogger(__name__)

HANDSHAKE_DONE = "jobupdates.handshake_done"
"""Scope key of the function that gives a connection's turn back: the consumer
calls it once connected or refused."""
BUSY_MESSAGE = "too many connections are opening at once; try again in a few seconds"
LOG_EVERY = 5.0
"""Seconds between two lines about refused handshakes (a storm refuses thousands)."""


class HandshakeGate:
    """The handshakes in progress in one process (one event loop)."""

    def __init__(self) -> None:
        self._slots: asyncio.Semaphore | None = None
        self._limit = 0
        self.refused = 0
        """Handshakes refused since the process started."""
        self.waiting = 0
        """Handshakes waiting for a turn now."""
        self._unlogged = 0
        self._logged_at = 0.0

    async def enter(self, limit: int, wait: float) -> Callable[[], None] | None:
        """Wait up to ``wait`` seconds for one of ``limit`` turns; return the function
        that gives it back (call it once the handshake is over; later calls do
        nothing), or None if no turn came."""
        slots = self._slots
        if slots is None or self._limit != limit:
            slots = self._slots = asyncio.Semaphore(limit)
            self._limit = limit
        if slots.locked():  # wait in turn (without a task of its own: asyncio.timeout)
            self.waiting += 1
            try:
                async with asyncio.timeout(wait):
                    await slots.acquire()
            except TimeoutError:
                self._refused(limit, wait)
                return None
            finally:
                self.waiting -= 1
        else:  # a turn is free and nobody waits: taken at once
            await slots.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slots.release()

        return release

    def _refused(self, limit: int, wait: float) -> None:
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY:
            logger.warning(
                "refused %d handshake(s) as busy (server_busy, 4503): %d in progress "
                "already, none freed within %.1fs (JOBUPDATES_MAX_HANDSHAKES, "
                "JOBUPDATES_HANDSHAKE_WAIT)",
                self._unlogged,
                limit,
                wait,
            )
            self._unlogged = 0
            self._logged_at = now


async def refuse_busy(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accept, say ``server_busy``, close with 4503 (come back later, with backoff).

    Accepted first: a close before accept reaches a browser as a bare HTTP 403.
    """
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    subprotocol, encoding = negotiate(scope.get("subprotocols", ()))
    await send({"type": "websocket.accept", "subprotocol": subprotocol})
    await send(asgi_send(error_frame(ErrorCode.SERVER_BUSY, BUSY_MESSAGE), encoding))
    await send({"type": "websocket.close", "code": int(CloseCode.SERVER_FULL)})
