"""The WebSocket side of a project's ASGI application, built in the one order that works.

:func:`websocket_application` returns a :class:`WebSocketApplication`. A
connection to ``/ws`` or ``/ws/`` is served in one step, with one copy of the
scope and one coroutine frame before the consumer (a connection's memory and
handshake time count: see docs/performance.md):

0. A turn among ``JOBUPDATES_MAX_HANDSHAKES`` handshakes in progress
   (:mod:`jobupdates.access.handshakes`): without one within
   ``JOBUPDATES_HANDSHAKE_WAIT`` seconds, ``server_busy`` and close 4503.
1. Daphne's own ``send`` is recorded (``scope[RAW_SEND]``), so the fast path
   writes straight to the socket and can measure a slow client's unsent bytes.
2. :func:`~jobupdates.access.middleware.identify`: a valid token's user, else
   the session cookie's user (one database thread hop; the session itself is
   not kept), and the ``Origin`` verdict. It only records what it found; the
   consumer refuses with an error message and a close code.
3. :class:`~jobupdates.consumers.JobUpdatesConsumer`.

Every other connection (``extra_routes``) goes through the classic stack, so
the project's consumers get what Channels gives them: ``RawSendMiddleware``,
Channels' ``AuthMiddlewareStack`` (``scope["session"]``, ``scope["user"]``),
:class:`~jobupdates.access.middleware.JobUpdatesAuthMiddleware`, ``URLRouter``.

It imports the consumer (and Django's models) only when called, so this module
can be imported before Django is set up; call it after
``get_asgi_application()``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.urls import URLPattern, URLResolver

from jobupdates.access.handshakes import HANDSHAKE_DONE, HandshakeGate, refuse_busy
from jobupdates.delivery.daphne import RAW_SEND, RawSendMiddleware

__all__ = ["HANDSHAKE_DONE", "WS_PATH", "WebSocketApplication", "websocket_application"]

WS_PATH = re.compile(r"/ws/?")
"""The paths the consumer serves (``jobupdates.routing`` routes the same)."""


class WebSocketApplication:
    """``/ws`` in one step; everything else through ``other`` (if any)."""

    def __init__(self, consumer: Any, other: Any | None) -> None:
        self.consumer = consumer
        self.other = other
        self.handshakes = HandshakeGate()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        from jobupdates.access.middleware import identify
        from jobupdates.conf import conf

        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if scope["type"] != "websocket" or not WS_PATH.fullmatch(path):
            if self.other is None:
                raise ValueError(f"expected a WebSocket to /ws, got {scope['type']} {path!r}")
            return await self.other(scope, receive, send)
        release = await self.handshakes.enter(conf.MAX_HANDSHAKES, conf.HANDSHAKE_WAIT)
        if release is None:
            await refuse_busy(scope, receive, send)
            return None
        scope = {**scope, RAW_SEND: send, HANDSHAKE_DONE: release}
        try:
            await identify(scope)
            return await self.consumer(scope, receive, send)
        finally:
            release()  # the consumer gives its turn back once connected; this is for the rest


def websocket_application(
    extra_routes: Sequence[URLPattern | URLResolver] = (),
) -> WebSocketApplication:
    """The ASGI application for the ``websocket`` key of a ``ProtocolTypeRouter``.

    ``extra_routes`` (``re_path``/``path`` entries of the project's own
    consumers) are routed when the path is not ``/ws``, behind the classic
    middleware. They get the session or token user in ``scope["user"]``, but
    nothing refuses their connections: the origin check's verdict is only
    recorded in ``scope["jobupdates.origin_ok"]``, and enforcing it is up to
    the consumer.
    """
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from jobupdates.access.middleware import JobUpdatesAuthMiddleware
    from jobupdates.consumers import JobUpdatesConsumer

    other = None
    if extra_routes:
        inner = JobUpdatesAuthMiddleware(URLRouter(list(extra_routes)))
        other = RawSendMiddleware(AuthMiddlewareStack(inner))
    return WebSocketApplication(JobUpdatesConsumer.as_asgi(), other)
