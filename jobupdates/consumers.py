"""The WebSocket consumer: admits, catches up, relays, and enforces the limits.

It only does I/O. Messages are parsed and built by :mod:`jobupdates.protocol`;
what a connection receives is its :class:`~jobupdates.delivery.feed.Feed`, which the
fast-path layer (:mod:`jobupdates.delivery.layers`) writes to directly. With another
channel layer, :meth:`JobUpdatesConsumer.job_update` hands updates to the feed.

On connect: refuse (error message, then a close code) or accept; join the
group with the feed holding updates back; send ``welcome``; replay what the
client missed (``?since=``) and the states of its jobs (``?job=``); then go
live.

How it runs (a mailbox instead of a channel, no ORM thread hop, sends
dropped after the close, a teardown run exactly once however it ends) is
:class:`~jobupdates.delivery.connection.LeanWebsocketConsumer`'s. Once it
closes (its own ``close_with``, or the client), no client message is
handled. Its teardown releases the admission slot, the registry record, the
group membership and the sink.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from jobupdates import protocol
from jobupdates.access import gate
from jobupdates.access.admission import admission
from jobupdates.access.handshakes import HANDSHAKE_DONE
from jobupdates.access.holding import HoldsAuthority
from jobupdates.access.limits import Strikes, TokenBucket
from jobupdates.access.revocation import authorities
from jobupdates.conf import conf
from jobupdates.delivery.catchup import catch_up
from jobupdates.delivery.connection import LeanWebsocketConsumer
from jobupdates.delivery.daphne import (
    abort_later,
    backlog_probe,
    frame_writer,
    negotiated_deflate,
    raw_send,
)
from jobupdates.delivery.fanout import InOrder, job_update_send
from jobupdates.delivery.faults import Fault, LayerFaults
from jobupdates.delivery.feed import Feed
from jobupdates.delivery.layers import JobUpdatesChannelLayer
from jobupdates.history import History
from jobupdates.monitoring import metrics
from jobupdates.monitoring.deliveries import counters
from jobupdates.monitoring.registry import LocalClient, get_registry
from jobupdates.protocol import ClientMessageType, CloseCode, ErrorCode, ServerMessageType
from jobupdates.protocol.connect import ConnectRequest
from jobupdates.protocol.encodings import Encoding, negotiate, payload
from jobupdates.protocol.events import JobUpdateEvent, MalformedEvent
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.positions import Position
from jobupdates.redis_client import async_client

__all__ = ["JobUpdatesConsumer"]

logger = logging.getLogger(__name__)

faults = LayerFaults(logger)
"""Malformed events that reach a consumer (a layer other than the fast path's)."""
SLOW_CLIENT_GRACE = 2.0
"""Seconds a slow client gets to read its close frame before the socket is aborted."""


class JobUpdatesConsumer(HoldsAuthority, LeanWebsocketConsumer):
    """Serves ``/ws``: one instance per WebSocket connection."""

    request: ConnectRequest = ConnectRequest()
    user_key: str | None = None
    admitted = False
    torn_down = False
    feed: Feed | None = None
    presence: LocalClient | None = None
    subprotocol: str | None = None
    """The subprotocol selected: ``jobupdates.v1.msgpack`` or ``jobupdates.v1`` if offered."""
    encoding = Encoding.JSON
    in_order: InOrder | None = None
    """This connection's order of updates (with a channel layer other than the fast path)."""

    async def connect(self) -> None:
        try:
            await self._connect()
        finally:  # connected or refused: the next handshake may start
            self.scope.get(HANDSHAKE_DONE, _nothing)()

    async def _connect(self) -> None:
        self.subprotocol, self.encoding = negotiate(self.scope.get("subprotocols", ()))
        admitted = await gate.admit(self.scope)
        if not isinstance(admitted, gate.Admitted):
            await self.refuse(*admitted)
            return
        self.admitted = True
        self.request, self.user_key = admitted.request, admitted.user_key
        self.client_id = uuid.uuid4().hex
        await self.accept(subprotocol=self.subprotocol)
        send = raw_send(self.scope, None)
        feed = self.feed = Feed(
            self.base_send if send is None else self.guarded(send),
            jobs=self.request.job_ids or None,
            write=frame_writer(send),
            backlog=backlog_probe(send),
            max_backlog=conf.MAX_BACKLOG_BYTES,
            on_overflow=self.on_overflow,
            encoding=self.encoding,
            compressed=negotiated_deflate(send),
        )
        self.bucket = TokenBucket(conf.RATE_LIMIT, conf.RATE_BURST)
        self.strikes = Strikes(conf.MAX_STRIKES)
        self.hold_authority()  # as soon as it can act: a change from now on reaches it
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.attach(self.channel_name, feed)
        await self.channel_layer.group_add(conf.GROUP, self.channel_name)
        # welcome once in the group: what is published after it reaches this client
        # (the feed holds live updates back until the replay is over)
        await self.send(text_data=protocol.welcome_frame(self.client_id))
        await catch_up(feed, self.request.since, sorted(feed.jobs or ()), client=self.client_id)
        if conf.REGISTRY:
            self.presence = await get_registry().register(
                self.scope,
                self.client_id,
                self.channel_name,
                self.subscriptions(),
                lambda: feed.sent,
            )
        logger.info("client %s connected (user %s)", self.client_id, self.user_key)

    async def send(
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Send a server message (built as JSON text) in the connection's encoding."""
        if text_data is not None and self.encoding is not Encoding.JSON:
            bytes_data = payload(text_data, self.encoding)
            text_data = None
        await super().send(text_data, bytes_data, close)

    async def refuse(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Accept, explain with an error message, then close with ``close_code``.

        A close before accept reaches a browser as a bare HTTP 403 (1006, no
        reason), so the refusal is sent over an accepted socket instead.
        """
        logger.info("refused a connection: %s: %s", code.value, loggable(message))
        await self.accept(subprotocol=self.subprotocol)
        await self.close_with(code, message, close_code)

    async def close_with(self, code: ErrorCode, message: str, close_code: CloseCode) -> None:
        """Send an error message, then close; Daphne drops close reasons, the message says it.

        Only the first call closes: a connection closes once.
        """
        if self.closing:
            return
        self.closing = True
        await self.send(text_data=protocol.error_frame(code, message))
        await self.close(code=int(close_code))  # autobahn rejects IntEnum

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return  # messages that were queued before the close
        if self.presence is not None:
            self.presence.last_active = time.time()
        if not self.bucket.take(time.monotonic()):
            message = f"expected at most {conf.RATE_LIMIT:g} frames/s, got more"
            await self.offence(ErrorCode.RATE_LIMITED, message, CloseCode.RATE_LIMITED)
            return
        try:
            request = protocol.parse_client_frame(
                text_data, bytes_data, max_chars=conf.MAX_FRAME_BYTES, encoding=self.encoding
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
        """Answer a bad or excess message; close the connection after too many."""
        logger.info("client %s: %s: %s", self.client_id, code.value, loggable(message))
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
            message = gate.job_forbidden_message(forbidden)
            await self.send(text_data=protocol.error_frame(ErrorCode.JOB_FORBIDDEN, message))
            return
        feed.hold()
        feed.jobs = (feed.jobs or set()) | set(new)
        authorities().subscribed(self.client_id, feed.jobs)
        await self.send(
            text_data=protocol.subscriptions_frame(ServerMessageType.SUBSCRIBED, job_ids)
        )
        await catch_up(feed, None, new, client=self.client_id)
        self.update_presence()

    async def unsubscribe(self, job_ids: tuple[str, ...]) -> None:
        feed = self.feed
        assert feed is not None
        if feed.jobs is None:
            message = "expected jobs this connection subscribed to, got an all-jobs connection"
            await self.send(text_data=protocol.error_frame(ErrorCode.INVALID_JOB_IDS, message))
            return
        feed.jobs -= set(job_ids)
        authorities().subscribed(self.client_id, feed.jobs)
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
        metrics.SLOW_CLIENT_DROPS.inc()
        if isinstance(self.channel_layer, JobUpdatesChannelLayer):
            self.channel_layer.detach(self.channel_name)
        message = f"this client fell too far behind ({reason}); reconnect with since="
        self._closing = asyncio.get_running_loop().create_task(
            self.close_with(ErrorCode.SLOW_CLIENT, message, CloseCode.SLOW_CLIENT)
        )
        abort_later(raw_send(self.scope, self.base_send), SLOW_CLIENT_GRACE)

    async def teardown(self, code: int | None) -> None:
        """Release what the connection holds, once; each step fails on its own.

        Args:
            code: The close code, or None if the consumer ended otherwise.
        """
        if self.torn_down or not self.admitted:
            return
        self.torn_down = self.closing = True
        layer = self.channel_layer
        if isinstance(layer, JobUpdatesChannelLayer):
            layer.detach(self.channel_name)
        admission.release(self.user_key)
        authorities().remove(self.client_id)
        if conf.REGISTRY:  # also when cancelled while registering: a no-op if not there
            await self._step(
                "registry unregister", lambda: get_registry().unregister(self.client_id)
            )
        await self._step(
            "group discard", lambda: layer.group_discard(conf.GROUP, self.channel_name)
        )
        how = "ended without a close" if code is None else f"code {code}"
        logger.info("client %s disconnected (%s)", self.client_id, how)

    async def _step(self, what: str, step: Callable[[], Awaitable[object]]) -> None:
        try:
            await step()
        except Exception as exc:  # the other steps must still run
            logger.warning(
                "client %s: %s failed on disconnect (%s: %s)",
                self.client_id,
                what,
                type(exc).__name__,
                exc,
            )

    async def job_update(self, event: dict[str, Any]) -> None:
        """Hand one update to the feed (with a channel layer other than the fast path),
        in the history's order, after what this connection missed before it.

        Counted as a delivery only if the feed sent it (not filtered out).
        """
        if self.feed is None or self.closing:
            return
        try:
            update = JobUpdateEvent.from_event(event)
        except MalformedEvent as exc:
            faults.record(Fault.MALFORMED_EVENT, f"client {self.client_id}: {exc}")
            return
        if self.in_order is None:
            history = functools.partial(History.from_conf, async_client())
            self.in_order = InOrder(self._to_feed, history, f"client {self.client_id}")
            if self.feed.position is not None:  # what its replay read last
                self.in_order.sequencer.last = Position.parse(self.feed.position)
        await self.in_order.receive(update)

    async def _to_feed(self, update: JobUpdateEvent, data: bytes | None) -> None:
        if self.feed is not None and await self.feed(job_update_send(update)):
            counters.direct(update.received_at)

    async def jobupdates_sink_failed(self, event: dict[str, Any]) -> None:
        """The fast path failed to write to this connection: close it (1011), nothing else."""
        logger.warning(
            "client %s: delivery failed (%s); closing it",
            self.client_id,
            loggable(event.get("reason")),
        )
        message = "the server failed to deliver to this connection; reconnect with since="
        await self.close_with(ErrorCode.INTERNAL_ERROR, message, CloseCode.INTERNAL_ERROR)

    async def jobupdates_disconnect(self, event: dict[str, Any]) -> None:
        """Close on a staff member's request (admin action): error message, then 4000."""
        await self.disconnected_by_staff(str(event.get("by", "")))


def _nothing() -> None:
    """No handshake turn to give back (a stack without ``jobupdates.asgi``)."""
