"""A channel layer with a fast path for job updates.

:class:`JobUpdatesChannelLayer` is channels_redis's pub/sub layer, so every
process gets one copy of each group message, plus one change: a consumer may
attach a *sink* (its raw ASGI ``send``) to its channel. When a job update
reaches a process, the layer decodes it once and hands the same pre-built
``websocket.send`` message to the sink of every local member of the group.
There is no per-connection queue, deserialization, JSON encoding, task
wake-up or thread hop. Members without a sink, and every other message,
take channels_redis's ordinary path, so the layer stays a standard one.

Group membership is still ``group_add``/``group_discard``: a sink only
receives what its channel's groups receive.

One bad message never stops the receive loop: bytes that do not decode and
malformed events are dropped, a sink that raises is detached and its
consumer asked to close (:data:`SINK_FAILED_EVENT`), and each fault is
logged (throttled) and counted (:mod:`jobupdates.delivery.faults`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from jobupdates.delivery.faults import Fault, LayerFaults
from jobupdates.delivery.mailboxes import Mailbox, Slot, mailbox_name, process_channel
from jobupdates.monitoring.deliveries import counters
from jobupdates.monitoring.instance import instance_id
from jobupdates.protocol.events import JOB_UPDATE_EVENT, JobUpdateEvent, MalformedEvent
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.wire import text_frame

__all__ = [
    "SINK_FAILED_EVENT",
    "JobUpdatesChannelLayer",
    "MalformedEvent",  # re-exported from jobupdates.protocol.events
    "Sink",
    "job_update_send",
]

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], Awaitable[object]]
"""Takes the ASGI message of :func:`job_update_send`; returns False if it did not
send it (filtered out), anything else if it did."""


SINK_FAILED_EVENT = "jobupdates.sink_failed"
"""Event the layer puts on a channel whose sink raised: ``{"type": ..., "reason": str}``.
The consumer closes that connection (1011); the sink is already detached."""


def job_update_send(update: JobUpdateEvent) -> dict[str, Any]:
    """The ``websocket.send`` message of a job update, built once per process.

    ``job_id`` and ``position`` ride along for the sinks' filters, and
    ``frame``, the WebSocket frame, for sinks that write to the socket
    themselves; ASGI servers ignore keys they do not know.
    """
    text = update.text
    return {
        "type": "websocket.send",
        "text": text,
        "job_id": update.job_id,
        "position": update.position,
        "frame": text_frame(text.encode()),
    }


_PUBLISH_MANY = "for i = 1, #ARGV do redis.call('PUBLISH', KEYS[1], ARGV[i]) end"
"""PUBLISHes each ARGV on the channel KEYS[1], in order."""
READ_TIMEOUT = 0.1
"""Seconds one pub/sub read waits (channels_redis's value)."""
RETRY_SECONDS = 1.0
"""Pause after a lost Redis connection before reading again (redis-py reconnects
and re-subscribes on that read)."""


class JobUpdatesChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels_redis's pub/sub layer, plus direct delivery of job updates to sinks.

    Configure it like ``channels_redis.pubsub.RedisPubSubChannelLayer``.
    """

    _publish_many: AsyncScript | None = None

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer: _LoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer

    async def group_send_many(self, group: str, messages: Sequence[dict[str, Any]]) -> None:
        """``group_send`` each message, in order, in one Redis command (a script that
        PUBLISHes each: Redis does the per-message work, not the client)."""
        if not messages:
            return
        layer = self._get_layer()
        group_channel = layer._get_group_channel_name(group)
        shard = layer._get_shard(group_channel)
        payloads = [self.serialize(message) for message in messages]
        async with shard._lock:
            shard._ensure_redis()
            client = shard._redis
            if self._publish_many is None:
                self._publish_many = client.register_script(_PUBLISH_MANY)
            await self._publish_many(keys=[group_channel], args=payloads, client=client)

    def attach(self, channel: str, sink: Sink) -> None:
        """Deliver job updates for ``channel`` straight to ``sink``."""
        self._get_layer().sinks[channel] = sink

    def detach(self, channel: str) -> None:
        """Stop direct delivery to ``channel``; its messages take the ordinary path."""
        self._get_layer().sinks.pop(channel, None)

    async def new_mailbox(self, deliver: Callable[[dict[str, Any]], None]) -> str:
        """A process-local channel whose messages are handed to ``deliver`` (see
        :mod:`jobupdates.delivery.mailboxes`): it joins groups and receives
        ``send`` like any channel, with no Redis subscription, queue or task of
        its own. Close it with :meth:`close_mailbox`."""
        return await self._get_layer().new_mailbox(deliver)

    def close_mailbox(self, channel: str) -> None:
        """Forget a mailbox; what is still sent to it is dropped."""
        self._get_layer().channels.pop(channel, None)


class _LoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    """The per-event-loop layer, with the sinks and mailboxes of local channels."""

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self.sinks: dict[str, Sink] = {}
        self.faults = LayerFaults(logger)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]
        self.process_channel = process_channel(self.prefix, instance_id())

    async def new_mailbox(self, deliver: Callable[[dict[str, Any]], None]) -> str:
        pattern = self.process_channel + "*"
        for shard in self._shards:  # a sender publishes on the shard of the full name
            await shard.psubscribe(pattern)  # once: a no-op when subscribed
        name = mailbox_name(self.process_channel)
        decode = self.channel_layer.deserialize
        self.channels[name] = Mailbox(name, deliver, decode, self.faults)
        return name


class _Shard(RedisSingleShardConnection):  # type: ignore[misc]
    """One Redis connection's receive loop, which routes job updates to sinks."""

    channel_layer: _LoopLayer

    _gap_started: float | None = None
    _resyncs: set[asyncio.Task[None]] | None = None

    async def subscribe(self, channel: str) -> None:
        """channels_redis's, without its lock when nothing is to be done (every
        handshake's ``group_add`` comes here): already subscribed, and no
        subscribe or unsubscribe under way."""
        if channel in self._subscribed_to and not self._lock.locked():
            return
        await super().subscribe(channel)

    async def psubscribe(self, pattern: str) -> None:
        """Subscribe to a pattern once (redis-py subscribes again after a reconnect)."""
        if pattern in self._subscribed_to and not self._lock.locked():
            return  # as in :meth:`subscribe`
        async with self._lock:
            if pattern not in self._subscribed_to:
                self._ensure_redis()
                self._ensure_receiver()
                await self._pubsub.psubscribe(pattern)
                self._subscribed_to.add(pattern)

    async def _do_receiving(self) -> None:
        faults = self.channel_layer.faults
        while True:
            try:
                message = await self._read()
            except (RedisError, OSError) as exc:
                if self._gap_started is None:
                    self._gap_started = time.time()
                logger.warning(
                    "channel layer lost Redis (%s: %s); re-subscribing in %.1fs",
                    type(exc).__name__,
                    exc,
                    RETRY_SECONDS,
                )
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception as exc:  # a bug: never a busy loop, never the end of the fan-out
                faults.record(Fault.UNEXPECTED, f"reading failed: {loggable(exc)}", exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is not None:
                try:
                    await self._route(message["channel"], message["data"])
                except Exception as exc:  # the next message is routed whatever this one did
                    faults.record(Fault.UNEXPECTED, f"routing failed: {loggable(exc)}", exc)
            if faults.pending:
                faults.summarize()

    async def _read(self) -> dict[str, Any] | None:
        """The next pub/sub message, or None after :data:`READ_TIMEOUT` without one."""
        if self._pubsub is None or not self._pubsub.subscribed:
            await asyncio.sleep(READ_TIMEOUT)
            return None
        message: dict[str, Any] | None = await self._pubsub.get_message(
            ignore_subscribe_messages=True, timeout=READ_TIMEOUT
        )
        if self._gap_started is not None:  # the read re-subscribed
            self._resubscribed(self._gap_started)
        return message

    def _resubscribed(self, gap_started: float) -> None:
        """Hold every feed back, then replay what the gap cost them (see ``resync``)."""
        from jobupdates.delivery.feed import Feed
        from jobupdates.delivery.resync import resync

        self._gap_started = None
        feeds = [sink for sink in self.channel_layer.sinks.values() if isinstance(sink, Feed)]
        logger.info(
            "channel layer re-subscribed after %.1fs; replaying to %d clients",
            time.time() - gap_started,
            len(feeds),
        )
        if not feeds:
            return
        for feed in feeds:
            feed.hold()
        task = asyncio.ensure_future(resync(feeds, gap_started))
        self._resyncs = (self._resyncs or set()) | {task}
        task.add_done_callback(self._resyncs.discard)

    async def _route(self, name: bytes | str, data: bytes) -> None:
        layer = self.channel_layer
        if isinstance(name, bytes):
            name = name.decode()
        queue = layer.channels.get(name)
        if queue is not None:
            queue.put_nowait(data)
            return
        members = layer.groups.get(name)
        if not members:
            return
        # checked once per process, so no consumer gets what it cannot dispatch
        event = layer.faults.decode_event(data, layer.channel_layer.deserialize, name)
        if event is None:
            return
        update: JobUpdateEvent | None = None
        if event["type"] == JOB_UPDATE_EVENT:
            try:
                update = JobUpdateEvent.from_event(event)
            except MalformedEvent as exc:  # dropped for every member, queued or not
                layer.faults.record(Fault.MALFORMED_EVENT, f"on {name!r}: {exc}")
                return
        send = job_update_send(update) if update is not None and layer.sinks else None
        delivered = 0
        for channel in tuple(members):  # a sink may await while membership changes
            queue = layer.channels.get(channel)
            if queue is None:
                layer.sinks.pop(channel, None)  # the consumer is gone
                continue
            sink = layer.sinks.get(channel) if send is not None else None
            if sink is None:
                queue.put_nowait(data)
                continue
            try:
                if await sink(send) is not False:  # type: ignore[arg-type]
                    delivered += 1
            except Exception as exc:  # one broken connection must not stop the fan-out
                self._sink_failed(channel, queue, exc)
        if update is not None and send is not None:  # once per update and process, for /metrics
            counters.fanout(delivered, update.received_at)

    def _sink_failed(self, channel: str, queue: Slot, exc: Exception) -> None:
        """Detach ``channel``'s sink and ask its consumer to close the connection."""
        layer = self.channel_layer
        layer.sinks.pop(channel, None)
        reason = f"its direct send raised {type(exc).__name__}"
        event = {"type": SINK_FAILED_EVENT, "reason": reason}
        queue.put_nowait(layer.channel_layer.serialize(event))
        detail = f"{reason}: {loggable(exc)}; detached {channel}, its consumer closes it (1011)"
        layer.faults.record(Fault.SINK_FAILED, detail, exc)
