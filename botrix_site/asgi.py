"""ASGI entry point: ``botrix_site.asgi:application``.

HTTP goes to Django. WebSocket goes to :func:`jobupdates.asgi.websocket_application`:
the jobupdates routes behind Django's session authentication and jobupdates'
token authentication and origin check (whose refusals the consumer sends as
error messages with close codes).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "botrix_site.settings")
django_asgi_app = get_asgi_application()  # set up Django before building the WebSocket stack

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from jobupdates.asgi import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app,
        "websocket": websocket_application(),
    }
)
