"""The server's own ``send`` and its write buffer, for the fast path and slow clients.

:class:`RawSendMiddleware` (outermost on the WebSocket stack) records the
server's ASGI ``send`` in the scope, so the fast path writes to it directly
instead of through every middleware's wrapper.

Daphne has no write backpressure: ``send`` appends to Twisted's transport
buffer, which grows without bound behind a client that stops reading.
:func:`backlog_probe` reads that buffer's size, so a feed can drop a slow
client before it holds much memory. Under another server it returns None.

What these read of Daphne, autobahn and Twisted is private: each helper
first asks the process's probe (:func:`jobupdates.delivery.internals.probed`)
whether its feature's names are there, and falls back (None, False, nothing)
if not; the server warned of it at start-up.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from jobupdates.delivery import internals
from jobupdates.delivery.internals import Feature

__all__ = [
    "CLOSED_SEND_ERRORS",
    "RAW_SEND",
    "RawSendMiddleware",
    "abort_later",
    "backlog_probe",
    "frame_writer",
    "negotiated_deflate",
    "raw_send",
]

RAW_SEND = "jobupdates.raw_send"


def _closed_send_errors() -> tuple[type[Exception], ...]:
    """What a server's ``send`` raises once the connection is closing or gone.

    Daphne passes a send to autobahn, which raises ``Disconnected`` between the
    close frame and the disconnect (afterwards Daphne drops sends itself);
    uvicorn raises an ``OSError`` (``ClientDisconnected``).
    """
    try:
        from autobahn.exception import Disconnected
    except ImportError:  # not under Daphne
        return (OSError,)
    return (Disconnected, OSError)


CLOSED_SEND_ERRORS = _closed_send_errors()


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


def _protocol(send: Any, feature: Feature) -> Any:
    """Daphne's ``send`` is ``functools.partial(server.handle_reply, protocol)``: its
    protocol, if ``feature`` has what it needs of Daphne's internals, else None."""
    is_daphnes = isinstance(send, functools.partial) and bool(send.args)
    if is_daphnes and internals.probed().available(feature):
        return send.args[0]
    return None


def _transport(send: Any, feature: Feature) -> Any:
    return getattr(_protocol(send, feature), "transport", None)


def frame_writer(send: Any) -> Callable[[bytes], int] | None:
    """Return a function that writes a complete WebSocket frame to ``send``'s socket
    and returns the bytes still waiting in Twisted's buffer after it.

    Daphne hands each message to autobahn, which frames and UTF-8-encodes it
    per connection, then to Twisted, which buffers every write and sends it
    on a later loop iteration after registering the socket for writing
    (two ``epoll_ctl`` calls per write). A job update's frame is the same
    bytes for every client, so this writes the pre-built frame straight to
    the socket when Twisted has nothing buffered, as asyncio's transports
    do, and hands whatever the socket did not take to Twisted. Its answer is
    :func:`backlog_probe`'s, without reading the buffer again when the socket
    took the whole frame (most writes: it is 0). Under another server (or
    TLS) it returns None and the ASGI ``send`` is used.
    """
    protocol = _protocol(send, Feature.DIRECT_WRITE)
    transport: Any = getattr(protocol, "transport", None)
    sock = getattr(transport, "socket", None)
    if sock is None or not hasattr(transport, "_tempDataLen") or not hasattr(protocol, "state"):
        return None
    state_open = protocol.STATE_OPEN

    def write(frame: bytes) -> int:
        if protocol.state != state_open or transport.disconnecting:
            return 0  # as Daphne does with a send after the close
        if transport._tempDataLen or len(transport.dataBuffer) != transport.offset:
            transport.write(frame)  # keep the order behind what Twisted holds
        else:
            try:
                sent = sock.send(frame)
            except BlockingIOError:
                sent = 0
            except OSError:
                transport.write(frame)  # let Twisted see and report the broken connection
                return 0
            if sent == len(frame):
                return 0
            transport.write(frame[sent:])
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    return write


def negotiated_deflate(send: Any) -> bool:
    """Whether ``send``'s connection negotiated permessage-deflate (autobahn's
    ``_perMessageCompress``; only the lean server accepts it, see
    :mod:`jobupdates.delivery.compression`)."""
    return getattr(_protocol(send, Feature.DEFLATE), "_perMessageCompress", None) is not None


def sendable_close(code: int) -> bool:
    """Whether Daphne can send close ``code`` from a ``websocket.close`` message:
    autobahn's ``sendClose`` (which it calls) refuses all but 1000 and 3000-4999
    (1011, 1012 and 1013 among them), and the application then fails."""
    return code == 1000 or 3000 <= code <= 4999


def close_framer(send: Any) -> Callable[[int], None] | None:
    """Return a function that sends a close frame with any code on ``send``'s
    connection, if it is still open: autobahn's ``sendCloseFrame``, as the
    drain sends 1012. None under another server (which takes any code)."""
    protocol = _protocol(send, Feature.CLOSE_FRAMES)
    if not hasattr(protocol, "sendCloseFrame") or not hasattr(protocol, "STATE_OPEN"):
        return None

    def close(code: int) -> None:
        if protocol.state == protocol.STATE_OPEN:
            protocol.sendCloseFrame(code=code)

    return close


def abort_later(send: Any, delay: float) -> None:
    """Drop the connection behind ``send`` after ``delay`` seconds if it is still open.

    A client that stops reading never reads its close frame either; aborting
    frees the buffer it pinned. Does nothing under a server other than Daphne.
    """
    transport = _transport(send, Feature.DIRECT_WRITE)
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
    transport = _transport(send, Feature.DIRECT_WRITE)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        return None

    def pending() -> int:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)

    return pending
