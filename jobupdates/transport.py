"""The server's own ``send`` and its write buffer, for the fast path and slow clients.

:class:`RawSendMiddleware` (outermost on the WebSocket stack) records the
server's ASGI ``send`` in the scope, so the fast path writes to it directly
instead of through every middleware's wrapper.

Daphne has no write backpressure: ``send`` appends to Twisted's transport
buffer, which grows without bound behind a client that stops reading.
:func:`backlog_probe` reads that buffer's size, so a feed can drop a slow
client before it holds much memory. Under another server it returns None.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

__all__ = ["RAW_SEND", "RawSendMiddleware", "abort_later", "backlog_probe", "raw_send"]

RAW_SEND = "jobupdates.raw_send"


class RawSendMiddleware:
    """Records the server's ``send`` in ``scope[RAW_SEND]`` for WebSocket connections."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            scope = {**scope, RAW_SEND: send}
        return await self.inner(scope, receive, send)


def raw_send(scope: dict[str, Any], fallback: Any) -> Any:
    """Return the server's own ``send`` if it was recorded, else ``fallback``."""
    return scope.get(RAW_SEND, fallback)


def _transport(send: Any) -> Any:
    """Daphne's ``send`` is ``functools.partial(server.handle_reply, protocol)``."""
    if isinstance(send, functools.partial) and send.args:
        return getattr(send.args[0], "transport", None)
    return None


def abort_later(send: Any, delay: float) -> None:
    """Drop the connection behind ``send`` after ``delay`` seconds if it is still open.

    A client that stops reading never reads its close frame either; aborting
    frees the buffer it pinned. Does nothing under a server other than Daphne.
    """
    transport = _transport(send)
    if transport is not None and hasattr(transport, "abortConnection"):
        asyncio.get_running_loop().call_later(delay, _abort, transport)


def _abort(transport: Any) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()


def backlog_probe(send: Any) -> Callable[[], int] | None:
    """Return a function giving the bytes waiting in ``send``'s write buffer, if knowable.

    Daphne's ``send`` is ``functools.partial(server.handle_reply, protocol)``;
    the protocol's Twisted transport buffers ``dataBuffer[offset:]`` plus
    ``_tempDataLen`` bytes not yet written to the socket.
    """
    transport = _transport(send)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        return None

    def pending() -> int:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    return pending
