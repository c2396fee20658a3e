"""WebSocket URL routes of the app."""

from __future__ import annotations

from django.urls import re_path

from jobupdates.consumers import JobUpdatesConsumer

websocket_urlpatterns = [
    re_path(r"^ws/?$", JobUpdatesConsumer.as_asgi()),
]
