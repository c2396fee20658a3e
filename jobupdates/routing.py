"""WebSocket URL routes of the app.

:func:`jobupdates.asgi.websocket_application` puts them behind the middleware
they need; route them yourself only to serve the consumer elsewhere.
"""

from __future__ import annotations

from django.urls import re_path

from jobupdates.consumers import JobUpdatesConsumer

websocket_urlpatterns = [
    re_path(r"^ws/?$", JobUpdatesConsumer.as_asgi()),
]
