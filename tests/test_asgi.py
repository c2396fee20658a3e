"""jobupdates.asgi builds the WebSocket stack in the order that works.

Driven in-process: a probe consumer on an extra route reports the scope it
got, and ``/ws`` reaches the real consumer through the same stack.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.urls import re_path

from jobupdates.access.middleware import ORIGIN_OK
from jobupdates.asgi import websocket_application
from jobupdates.delivery.daphne import RAW_SEND

SEEN: list[dict[str, Any]] = []


class Probe(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        SEEN.append(self.scope)
        await self.accept()


def connect_to(path: str, origin: str) -> WebsocketCommunicator:
    application = websocket_application(extra_routes=[re_path(r"^probe/$", Probe.as_asgi())])
    return WebsocketCommunicator(application, path, headers=[(b"origin", origin.encode())])


@pytest.mark.django_db  # Channels' default dispatch closes old database connections
async def test_extra_routes_get_the_servers_own_send_the_user_and_the_origin_verdict(settings):
    settings.ALLOWED_HOSTS = ["app.example.com"]
    SEEN.clear()
    comm = connect_to("/probe/", "https://app.example.com")
    assert (await comm.connect())[0]
    await comm.disconnect()
    [scope] = SEEN
    # RawSendMiddleware outermost: the session middleware inside it wraps send.
    assert scope[RAW_SEND] == comm.output_queue.put, "expected the server's own send"
    assert isinstance(scope["user"], AnonymousUser)
    assert scope[ORIGIN_OK] is True

    SEEN.clear()
    comm = connect_to("/probe/", "https://evil.test")
    assert (await comm.connect())[0], "expected extra routes to enforce the verdict themselves"
    await comm.disconnect()
    assert SEEN[0][ORIGIN_OK] is False


async def test_ws_reaches_the_consumer_which_refuses_a_foreign_origin(settings):
    settings.ALLOWED_HOSTS = ["app.example.com"]
    comm = connect_to("/ws", "https://evil.test")
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["code"] == "origin_not_allowed"
    assert (await comm.receive_output())["code"] == 4403
