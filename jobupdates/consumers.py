"""The WebSocket consumer: authenticates, joins the updates group, relays frames.

It only does I/O: every frame it parses or builds comes from
:mod:`jobupdates.protocol`. Job updates arrive from the bridge already
encoded. With :class:`~jobupdates.layers.JobUpdatesChannelLayer` the consumer
attaches its raw ASGI ``send`` to the layer, which writes each update to it
directly; with any other layer, :meth:`JobUpdatesConsumer.job_update` relays
it, still with no JSON work.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from jobupdates import protocol
from jobupdates.conf import conf
from jobupdates.deliveries import RECEIVED_AT, counters
from jobupdates.layers import JobUpdatesChannelLayer
from jobupdates.protocol import ClientMessageType, CloseCode, ErrorCode
from jobupdates.registry import LocalClient, get_registry

__all__ = ["JobUpdatesConsumer"]

logger = logging.getLogger(__name__)


class JobUpdatesConsumer(AsyncWebsocketConsumer):
    """Serves ``/ws``: one instance per WebSocket connection."""

    client_id: str = ""
    group: str | None = None
    presence: LocalClient | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for ``message`` without Channels' ORM cleanup.

        Channels 4.2+ runs ``close_old_connections`` in a thread before every
        handler; that thread hop is about half the cost of relaying an update.
        This consumer never touches the ORM (the auth middleware loads the
        user, in its own thread, before ``connect``), so it skips the hop.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(
                f"expected a message type this consumer handles, got {message['type']!r}"
            )
        await handler(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if conf.REQUIRE_AUTH and not (user is not None and user.is_authenticated):
            await self.refuse(
                ErrorCode.UNAUTHENTICATED,
                "log in to receive job updates",
                CloseCode.UNAUTHENTICATED,
            )
            return
        self.client_id = uuid.uuid4().hex
        await self.accept()
        await self.send(text_data=protocol.welcome_frame(self.client_id))
        await self.join(conf.GROUP)
        self.presence = await get_registry().register(
            self.scope, self.client_id, self.channel_name, conf.GROUP
        )
        logger.info("client %s connected (user %s)", self.client_id, getattr(user, "pk", None))

    async def refuse(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Accept, explain with an error frame, then close with ``close_code``.

        A close before accept reaches a browser as a bare HTTP 403 (1006, no
        reason), so the refusal is sent over an accepted socket instead.
        """
        await self.accept()
        await self.send(text_data=protocol.error_frame(code, message))
        await self.close(code=int(close_code))  # autobahn rejects IntEnum

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.presence is not None:
            self.presence.last_active = time.time()
        try:
            message = protocol.parse_client_frame(text_data, bytes_data)
        except protocol.FrameError as exc:
            logger.info("client %s sent a bad frame: %s", self.client_id, exc)
            await self.send(text_data=protocol.error_frame(exc.code, exc.detail))
            return
        if message.type is ClientMessageType.PING:
            await self.send(text_data=protocol.pong_frame())

    async def join(self, group: str) -> None:
        """Join ``group`` after the welcome, so no update can overtake it."""
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.attach(self.channel_name, self.base_send)
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            if isinstance(self.channel_layer, JobUpdatesChannelLayer):
                self.channel_layer.detach(self.channel_name)
            await self.channel_layer.group_discard(self.group, self.channel_name)
            logger.info("client %s disconnected (code %s)", self.client_id, code)
        if self.presence is not None:
            await get_registry().unregister(self.client_id)

    async def job_update(self, event: dict[str, Any]) -> None:
        """Relay one update from the bridge; ``event["text"]`` is already the frame."""
        await self.send(text_data=event["text"])
        counters.direct(event.get(RECEIVED_AT))
        if self.presence is not None:
            self.presence.direct += 1

    async def jobupdates_disconnect(self, event: dict[str, Any]) -> None:
        """Close on a staff member's request (admin action): error frame, then 4000."""
        logger.info("client %s disconnected by staff (%s)", self.client_id, event.get("by"))
        message = "a staff member disconnected this client; reload the page to reconnect"
        await self.send(text_data=protocol.error_frame(ErrorCode.DISCONNECTED_BY_STAFF, message))
        await self.close(code=int(CloseCode.DISCONNECTED_BY_STAFF))
