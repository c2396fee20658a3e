"""How a WebSocket consumer of this project runs: lean, guarded, torn down once.

:class:`LeanWebsocketConsumer` is Channels' ``AsyncWebsocketConsumer`` with
four changes, none of them about what the consumer says:

* With the fast layer, its channel is a mailbox
  (:mod:`jobupdates.delivery.mailboxes`) and only the client's messages are
  awaited, in Daphne's own task for the connection: no task, queue or Redis
  subscription of its own. A mailbox message is handled in a task of its own
  (they are rare: a staff member's disconnect, the fast path's failure).
  With another layer, Channels runs it as usual.
* Handlers run without Channels' ORM cleanup thread hop (:meth:`dispatch`).
* Sends after the close are dropped instead of raising, and a close code
  Daphne cannot send from ``websocket.close`` (1011) goes out as a close frame
  of its own (:meth:`guarded`).
* :meth:`teardown` runs exactly once however the consumer ends (a
  disconnect, an exception, a cancellation), shielded from Daphne's repeated
  cancel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels import consumer as channels_consumer
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from jobupdates.delivery.daphne import CLOSED_SEND_ERRORS, close_framer, sendable_close
from jobupdates.delivery.feed import Send
from jobupdates.delivery.layers import JobUpdatesChannelLayer
from jobupdates.protocol.logs import loggable

__all__ = ["LeanWebsocketConsumer"]

logger = logging.getLogger(__name__)

_handling: set[asyncio.Task[None]] = set()
"""Tasks handling mailbox messages, kept until done."""


class LeanWebsocketConsumer(AsyncWebsocketConsumer):
    """A consumer run as described in :mod:`jobupdates.delivery.connection`."""

    client_id: str = ""
    closing = False
    """Set once this server decided to close: client messages are ignored from then on."""
    closed = False
    """Set once the close was sent or the connection was found gone: sends are dropped."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Run the consumer; tear it down however it ends (see :meth:`teardown`)."""
        layer = get_channel_layer(self.channel_layer_alias)
        try:
            if isinstance(layer, JobUpdatesChannelLayer):
                await self._serve(layer, scope, receive, self.guarded(send))
            else:
                await super().__call__(scope, receive, self.guarded(send))
        finally:
            # shielded: Daphne may cancel again (application_checker), the teardown goes on
            await asyncio.shield(self.teardown(None))

    async def _serve(
        self, layer: JobUpdatesChannelLayer, scope: dict[str, Any], receive: Any, send: Send
    ) -> None:
        self.scope = scope
        self.channel_layer = layer
        self.base_send = send
        self.channel_name = await layer.new_mailbox(self._deliver)
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            layer.close_mailbox(self.channel_name)

    def _deliver(self, message: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle_sent(message))
        _handling.add(task)
        task.add_done_callback(_handling.discard)

    async def _handle_sent(self, message: dict[str, Any]) -> None:
        try:
            await self.dispatch(message)
        except Exception as exc:  # one bad message must not end the connection
            logger.warning(
                "client %s: could not handle %s (%s)",
                self.client_id,
                loggable(message.get("type")),
                loggable(exc),
            )

    def guarded(self, send: Callable[[dict[str, Any]], Awaitable[object]]) -> Send:
        """``send``, dropping what comes after the close instead of raising."""

        async def guarded_send(message: dict[str, Any]) -> None:
            if self.closed:
                return
            if message["type"] == "websocket.close":
                self.closing = self.closed = True
                code = message.get("code", 1000)
                if not sendable_close(code) and (framer := close_framer(send)) is not None:
                    framer(code)  # e.g. 1011, which Daphne's websocket.close cannot send
                    return
            try:
                await send(message)
            except CLOSED_SEND_ERRORS as exc:
                self.closing = self.closed = True
                logger.debug("client %s: send after the close dropped (%s)", self.client_id, exc)

        return guarded_send

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for ``message`` without Channels' ORM cleanup.

        Channels 4.2+ runs ``close_old_connections`` in a thread before every
        handler; that thread hop is about half the cost of relaying an update.
        This project's ORM calls run in ``database_sync_to_async``, which does
        that cleanup itself, so it skips the hop. Channels' ``get_handler_name``
        and ``base_send`` are private (:mod:`jobupdates.delivery.internals`).
        """
        handler = getattr(self, channels_consumer.get_handler_name(message), None)
        if handler is None:
            raise ValueError(
                f"expected a message type this consumer handles, got {message['type']!r}"
            )
        await handler(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Like Channels' handler, minus its ORM cleanup thread hop (see :meth:`dispatch`)."""
        await self.disconnect(message["code"])
        raise StopConsumer

    async def disconnect(self, code: int) -> None:
        await self.teardown(code)

    async def teardown(self, code: int | None) -> None:
        """Release what the connection holds; called on a disconnect and again when
        the consumer ends, so it must act once (override it).

        Args:
            code: The close code, or None if the consumer ended otherwise.
        """
