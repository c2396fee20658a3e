"""ASGI entry point: ``botrix_site.asgi:application``.

HTTP goes to Django. WebSocket goes to the jobupdates routes, behind Django's
session authentication and jobupdates' token authentication and origin check
(whose refusals the consumer sends as error frames with close codes).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "botrix_site.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from jobupdates.access.middleware import JobUpdatesAuthMiddleware  # noqa: E402
from jobupdates.delivery.daphne import RawSendMiddleware  # noqa: E402
from jobupdates.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": ASGIStaticFilesHandler(django_asgi_app) if settings.DEBUG else django_asgi_app,
        "websocket": RawSendMiddleware(
            AuthMiddlewareStack(JobUpdatesAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
