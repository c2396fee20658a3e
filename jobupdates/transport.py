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

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["RAW_SEND", "RawSendMiddleware", "backlog_probe", "raw_send"]

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


def backlog_probe(send: Any) -> Callable[[], int] | None:
    """Return a function giving the bytes waiting in ``send``'s write buffer, if knowable.

    Daphne's ``send`` is ``functools.partial(server.handle_reply, protocol)``;
    the protocol's Twisted transport buffers ``dataBuffer[offset:]`` plus
    ``_tempDataLen`` bytes not yet written to the socket.
    """
    if not (isinstance(send, functools.partial) and send.args):
        return None
    transport = getattr(send.args[0], "transport", None)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        return None

    def pending() -> int:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    return pending
