"""The WebSocket consumer: admits, catches up, relays, and enforces the limits.

It only does I/O. Frames are parsed and built by :mod:`jobupdates.protocol`;
what a connection receives is its :class:`~jobupdates.feed.Feed`, which the
fast-path layer (:mod:`jobupdates.layers`) writes to directly. With another
channel layer, :meth:`JobUpdatesConsumer.job_update` hands updates to the feed.

On connect: refuse (error frame, then a close code) or accept; send
``welcome``; join the group with the feed holding updates back; replay what
the client missed (``?since=``) and the states of its jobs (``?job=``); then
go live.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from redis.exceptions import RedisError

from jobupdates import gate, protocol
from jobupdates.admission import admission
from jobupdates.conf import conf
from jobupdates.deliveries import RECEIVED_AT, counters
from jobupdates.feed import Feed
from jobupdates.history import History
from jobupdates.layers import JobUpdatesChannelLayer, job_update_send
from jobupdates.limits import Strikes, TokenBucket
from jobupdates.protocol import ClientMessageType, CloseCode, ErrorCode, ServerMessageType
from jobupdates.protocol.connect import ConnectRequest
from jobupdates.protocol.positions import Position, PositionError, ResetReason
from jobupdates.redis_client import async_client
from jobupdates.registry import LocalClient, get_registry
from jobupdates.tokens import SUBPROTOCOL
from jobupdates.transport import abort_later, backlog_probe, frame_writer, raw_send

__all__ = ["JobUpdatesConsumer"]

logger = logging.getLogger(__name__)

SLOW_CLIENT_GRACE = 2.0
"""Seconds a slow client gets to read its close frame before the socket is aborted."""


class JobUpdatesConsumer(AsyncWebsocketConsumer):
    """Serves ``/ws``: one instance per WebSocket connection."""

    client_id: str = ""
    request: ConnectRequest = ConnectRequest()
    user_key: str | None = None
    admitted = False
    feed: Feed | None = None
    presence: LocalClient | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Call the handler for ``message`` without Channels' ORM cleanup.

        Channels 4.2+ runs ``close_old_connections`` in a thread before every
        handler; that thread hop is about half the cost of relaying an update.
        This consumer's ORM calls run in ``database_sync_to_async``, which
        does that cleanup itself, so it skips the hop.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(
                f"expected a message type this consumer handles, got {message['type']!r}"
            )
        await handler(message)

    async def connect(self) -> None:
        admitted = await gate.admit(self.scope)
        if not isinstance(admitted, gate.Admitted):
            await self.refuse(*admitted)
            return
        self.admitted = True
        self.request, self.user_key = admitted.request, admitted.user_key
        self.client_id = uuid.uuid4().hex
        offered = SUBPROTOCOL in self.scope.get("subprotocols", ())
        await self.accept(subprotocol=SUBPROTOCOL if offered else None)
        await self.send(text_data=protocol.welcome_frame(self.client_id))
        send = raw_send(self.scope, self.base_send)
        feed = self.feed = Feed(
            send,
            jobs=self.request.job_ids or None,
            write=frame_writer(send),
            backlog=backlog_probe(send),
            max_backlog=conf.MAX_BACKLOG_BYTES,
            on_overflow=self.on_overflow,
        )
        self.bucket = TokenBucket(conf.RATE_LIMIT, conf.RATE_BURST)
        self.strikes = Strikes(conf.MAX_STRIKES)
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.attach(self.channel_name, feed)
        await self.channel_layer.group_add(conf.GROUP, self.channel_name)
        await self.catch_up(self.request.since)
        if conf.REGISTRY:
            self.presence = await get_registry().register(
                self.scope,
                self.client_id,
                self.channel_name,
                self.subscriptions(),
                lambda: feed.sent,
            )
        logger.info("client %s connected (user %s)", self.client_id, self.user_key)

    async def refuse(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Accept, explain with an error frame, then close with ``close_code``.

        A close before accept reaches a browser as a bare HTTP 403 (1006, no
        reason), so the refusal is sent over an accepted socket instead.
        """
        logger.info("refused a connection: %s: %s", code.value, message)
        await self.accept()
        await self.close_with(code, message, close_code)

    async def close_with(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Send an error frame, then close; Daphne drops close reasons, the frame says it."""
        await self.send(text_data=protocol.error_frame(code, message))
        await self.close(code=int(close_code))  # autobahn rejects IntEnum

    async def catch_up(self, since: str | None, jobs: tuple[str, ...] | None = None) -> None:
        """Replay what the client missed and send job states, then go live.

        Args:
            since: The position to resume after, if the client sent one.
            jobs: The jobs whose states to send; by default all the feed's.
        """
        feed = self.feed
        assert feed is not None
        history = History.from_conf(async_client())
        try:
            if since is not None:
                await self.replay(history, since)
            wanted = jobs if jobs is not None else sorted(feed.jobs or ())
            await feed.send_states(await history.states(wanted))
        except (RedisError, OSError) as exc:
            logger.warning("client %s: history unavailable (%s)", self.client_id, exc)
            await feed.send_reset(ResetReason.HISTORY_UNAVAILABLE, str(exc))
        await feed.go_live()

    async def replay(self, history: History, since: str) -> None:
        assert self.feed is not None
        try:
            recovery = await history.since(Position.parse(since))
        except PositionError as exc:
            reset, detail = ResetReason.INVALID_POSITION, str(exc)
        else:
            if recovery.reset is None:
                await self.feed.replay(recovery.entries)
                return
            reset, detail = recovery.reset, "updates were missed; reload the current state"
        await self.send(text_data=protocol.reset_frame(reset.value, detail))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.presence is not None:
            self.presence.last_active = time.time()
        if not self.bucket.take(time.monotonic()):
            message = f"expected at most {conf.RATE_LIMIT:g} frames/s, got more"
            await self.offence(ErrorCode.RATE_LIMITED, message, CloseCode.RATE_LIMITED)
            return
        try:
            request = protocol.parse_client_frame(
                text_data, bytes_data, max_chars=conf.MAX_FRAME_BYTES
            )
        except protocol.FrameError as exc:
            await self.offence(exc.code, exc.detail, CloseCode.PROTOCOL_ERROR)
            return
        if request.type is ClientMessageType.PING:
            await self.send(text_data=protocol.pong_frame())
        elif request.type is ClientMessageType.SUBSCRIBE:
            await self.subscribe(request.job_ids)
        else:
            await self.unsubscribe(request.job_ids)

    async def offence(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Answer a bad or excess frame; close the connection after too many."""
        logger.info("client %s: %s: %s", self.client_id, code.value, message)
        if self.strikes.add():
            last = f"closed after {self.strikes.count} bad or excess frames; last: {message}"
            if close_code is CloseCode.PROTOCOL_ERROR:
                code = ErrorCode.TOO_MANY_BAD_FRAMES
            await self.close_with(code, last, close_code)
        else:
            await self.send(text_data=protocol.error_frame(code, message))

    async def subscribe(self, job_ids: tuple[str, ...]) -> None:
        feed = self.feed
        assert feed is not None
        new = tuple(j for j in job_ids if feed.jobs is None or j not in feed.jobs)
        total = len(feed.jobs or ()) + len(new)
        if total > conf.MAX_SUBSCRIPTIONS:
            message = f"expected at most {conf.MAX_SUBSCRIPTIONS} subscriptions, got {total}"
            await self.send(
                text_data=protocol.error_frame(ErrorCode.TOO_MANY_SUBSCRIPTIONS, message)
            )
            return
        forbidden = await gate.forbidden_jobs(self.scope.get("user"), new)
        if forbidden:
            message = f"not allowed to receive job(s) {', '.join(forbidden)}"
            await self.send(text_data=protocol.error_frame(ErrorCode.JOB_FORBIDDEN, message))
            return
        feed.hold()
        feed.jobs = (feed.jobs or set()) | set(new)
        await self.send(
            text_data=protocol.subscriptions_frame(ServerMessageType.SUBSCRIBED, job_ids)
        )
        await self.catch_up(None, new)
        self.update_presence()

    async def unsubscribe(self, job_ids: tuple[str, ...]) -> None:
        feed = self.feed
        assert feed is not None
        if feed.jobs is None:
            message = "expected jobs this connection subscribed to, got an all-jobs connection"
            await self.send(text_data=protocol.error_frame(ErrorCode.INVALID_JOB_IDS, message))
            return
        feed.jobs -= set(job_ids)
        kind = ServerMessageType.UNSUBSCRIBED
        await self.send(text_data=protocol.subscriptions_frame(kind, job_ids))
        self.update_presence()

    def subscriptions(self) -> list[str]:
        jobs = self.feed.jobs if self.feed is not None else None
        return [conf.GROUP] if jobs is None else sorted(jobs)

    def update_presence(self) -> None:
        if self.presence is not None:
            self.presence.resubscribe(self.subscriptions())

    def on_overflow(self, reason: str) -> None:
        """The feed's limit was passed: close this slow client (called from the fan-out)."""
        logger.warning("client %s is too slow (%s); disconnecting", self.client_id, reason)
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.detach(self.channel_name)
        message = f"this client fell too far behind ({reason}); reconnect with since="
        self._closing = asyncio.get_running_loop().create_task(
            self.close_with(ErrorCode.SLOW_CLIENT, message, CloseCode.SLOW_CLIENT)
        )
        abort_later(raw_send(self.scope, self.base_send), SLOW_CLIENT_GRACE)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Like Channels' handler, minus its ORM cleanup thread hop (see :meth:`dispatch`)."""
        await self.disconnect(message["code"])
        raise StopConsumer

    async def disconnect(self, code: int) -> None:
        if not self.admitted:
            return
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.detach(self.channel_name)
        await self.channel_layer.group_discard(conf.GROUP, self.channel_name)
        admission.release(self.user_key)
        if self.presence is not None:
            await get_registry().unregister(self.client_id)
        logger.info("client %s disconnected (code %s)", self.client_id, code)

    async def job_update(self, event: dict[str, Any]) -> None:
        """Hand one update to the feed (with a channel layer other than the fast path)."""
        if self.feed is not None:
            await self.feed(job_update_send(event))
            counters.direct(event.get(RECEIVED_AT))

    async def jobupdates_disconnect(self, event: dict[str, Any]) -> None:
        """Close on a staff member's request (admin action): error frame, then 4000."""
        logger.info("client %s disconnected by staff (%s)", self.client_id, event.get("by"))
        message = "a staff member disconnected this client; reload the page to reconnect"
        await self.close_with(
            ErrorCode.DISCONNECTED_BY_STAFF, message, CloseCode.DISCONNECTED_BY_STAFF
        )
