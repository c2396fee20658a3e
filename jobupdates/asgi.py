"""The WebSocket side of a project's ASGI application, built in the one order that works.

:func:`websocket_application` returns, from the outside in:

1. :class:`~jobupdates.delivery.daphne.RawSendMiddleware`: records Daphne's
   own ``send``, so the fast path writes straight to the socket and can
   measure a slow client's unsent bytes. It must be outermost.
2. Channels' ``AuthMiddlewareStack``: the Django session and its user.
3. :class:`~jobupdates.access.middleware.JobUpdatesAuthMiddleware`: a token's
   user replaces the session's, and the ``Origin`` is checked. It only records
   what it found; the consumer refuses with an error message and a close code.
4. ``URLRouter``: ``/ws`` and ``/ws/`` to
   :class:`~jobupdates.consumers.JobUpdatesConsumer`, then ``extra_routes``.

It imports the consumer (and Django's models) only when called, so this module
can be imported before Django is set up; call it after
``get_asgi_application()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.urls import URLPattern, URLResolver

from jobupdates.delivery.daphne import RawSendMiddleware

__all__ = ["websocket_application"]


def websocket_application(
    extra_routes: Sequence[URLPattern | URLResolver] = (),
) -> RawSendMiddleware:
    """The ASGI application for the ``websocket`` key of a ``ProtocolTypeRouter``.

    ``extra_routes`` (``re_path``/``path`` entries of the project's own
    consumers) are routed after ``/ws``, behind the same middleware. They get
    the session or token user in ``scope["user"]``, but nothing refuses their
    connections: the origin check's verdict is only recorded in
    ``scope["jobupdates.origin_ok"]``, and enforcing it is up to the consumer.
    """
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from jobupdates.access.middleware import JobUpdatesAuthMiddleware
    from jobupdates.routing import websocket_urlpatterns

    routes = [*websocket_urlpatterns, *extra_routes]
    return RawSendMiddleware(AuthMiddlewareStack(JobUpdatesAuthMiddleware(URLRouter(routes))))
