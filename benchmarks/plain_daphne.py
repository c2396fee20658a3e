"""The floor Daphne sets: a raw ASGI broadcast application, no Django, no Channels.

Daphne serves ``benchmarks.plain_daphne:application`` with the project's
command line (:func:`botrix_site.serve.daphne_argv`: same endpoint, backlog
4096, ping flags); Redis is found at ``REDIS_URL``. The application accepts
every WebSocket, greets it with a welcome frame and keeps its ``send`` in a
set. The first connection starts the process's one subscription to the
workers' channel (Daphne runs no lifespan protocol), and every connection
waits for it before its welcome, so an update published after a welcome
reaches it. Each update's client frame is encoded once (the same JSON as the
project's) and handed to every connection's ASGI ``send``, as
:mod:`benchmarks.reference_server` does with ``broadcast()``: what remains is
Daphne's own cost (Twisted, autobahn, the ASGI queue per connection).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from autobahn.exception import Disconnected

from benchmarks.reference_server import client_frame, encode
from harness.updates import CHANNEL

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
CLOSED_SEND_ERRORS = (Disconnected, OSError)
"""What Daphne's ``send`` raises between a close frame and the disconnect."""


class Broadcaster:
    """The ``send`` of every open connection and the Redis loop that feeds them."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.sends: set[Send] = set()
        self._subscribed: asyncio.Future[None] | None = None
        self._relay: asyncio.Task[None] | None = None

    async def subscribed(self) -> None:
        """Start the process's one subscription if it is not started; wait until it is made."""
        if self._subscribed is None:
            self._subscribed = asyncio.get_running_loop().create_future()
            self._relay = asyncio.create_task(self.relay(self._subscribed))
        await asyncio.shield(self._subscribed)

    async def relay(self, subscribed: asyncio.Future[None]) -> None:
        """Forward every valid update on the channel to every connection, for ever."""
        client = aioredis.Redis.from_url(
            self.redis_url, socket_timeout=30, health_check_interval=10
        )
        try:
            async with client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(self.channel)
                logger.info("subscribed to %r", self.channel)
                subscribed.set_result(None)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    frame = client_frame(message["data"]) if message is not None else None
                    if frame is not None:
                        await self.broadcast({"type": "websocket.send", "text": frame})
        except Exception as exc:
            logger.exception("relay stopped")
            if not subscribed.done():
                subscribed.set_exception(exc)
            raise
        finally:
            if not subscribed.done():  # cancelled before it subscribed
                subscribed.cancel()

    async def broadcast(self, message: Message) -> None:
        """Hand ``message`` to every connection's ``send`` (Daphne's returns at once)."""
        for send in tuple(self.sends):
            try:
                await send(message)
            except CLOSED_SEND_ERRORS:
                self.sends.discard(send)

    async def websocket(self, receive: Receive, send: Send) -> None:
        """Accept and greet one client, keep its ``send`` in the set until it goes."""
        if (await receive())["type"] != "websocket.connect":
            return
        await self.subscribed()
        await send({"type": "websocket.accept"})
        welcome = encode({"type": "welcome", "client_id": uuid.uuid4().hex})
        await send({"type": "websocket.send", "text": welcome})
        self.sends.add(send)
        try:
            while (await receive())["type"] != "websocket.disconnect":
                pass  # client frames are ignored
        finally:
            self.sends.discard(send)


async def not_found(send: Send) -> None:
    """Answer an HTTP request: there is no page here."""
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"not found\n"})


class Application:
    """The ASGI application: WebSockets go to the broadcaster, HTTP gets a 404."""

    def __init__(self) -> None:
        self.broadcaster = Broadcaster(os.environ["REDIS_URL"], CHANNEL)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.broadcaster.websocket(receive, send)
        elif scope["type"] == "http":
            await not_found(send)


application = Application()
