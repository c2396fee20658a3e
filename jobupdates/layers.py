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
from redis.exceptions import RedisError

from jobupdates.deliveries import RECEIVED_AT, counters
from jobupdates.protocol import JOB_UPDATE_EVENT
from jobupdates.protocol.wire import text_frame

__all__ = ["JobUpdatesChannelLayer", "Sink", "job_update_send"]

logger = logging.getLogger(__name__)

Sink = Callable[[dict[str, Any]], Awaitable[object]]
"""Takes the ASGI message of :func:`job_update_send`; returns False if it did not
send it (filtered out), anything else if it did."""


def job_update_send(event: dict[str, Any]) -> dict[str, Any]:
    """The ``websocket.send`` message of a job update, built once per process.

    ``job_id`` and ``position`` ride along for the sinks' filters, and
    ``frame``, the WebSocket frame, for sinks that write to the socket
    themselves; ASGI servers ignore keys they do not know.
    """
    text: str = event["text"]
    return {
        "type": "websocket.send",
        "text": text,
        "job_id": event.get("job_id"),
        "position": event.get("position"),
        "frame": text_frame(text.encode()),
    }


READ_TIMEOUT = 0.1
"""Seconds one pub/sub read waits (channels_redis's value)."""
RETRY_SECONDS = 1.0
"""Pause after a lost Redis connection before reading again (redis-py reconnects
and re-subscribes on that read)."""


class JobUpdatesChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels_redis's pub/sub layer, plus direct delivery of job updates to sinks.

    Configure it like ``channels_redis.pubsub.RedisPubSubChannelLayer``.
    """

    def _get_layer(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        layer: _LoopLayer | None = self._layers.get(loop)
        if layer is None:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer

    async def group_send_many(self, group: str, messages: Sequence[dict[str, Any]]) -> None:
        """``group_send`` each message, in order, in one Redis round trip (a pipeline)."""
        layer = self._get_layer()
        group_channel = layer._get_group_channel_name(group)
        shard = layer._get_shard(group_channel)
        payloads = [self.serialize(message) for message in messages]
        async with shard._lock:
            shard._ensure_redis()
            async with shard._redis.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(group_channel, payload)
                await pipe.execute()

    def attach(self, channel: str, sink: Sink) -> None:
        """Deliver job updates for ``channel`` straight to ``sink``."""
        self._get_layer().sinks[channel] = sink

    def detach(self, channel: str) -> None:
        """Stop direct delivery to ``channel``; its messages take the ordinary path."""
        self._get_layer().sinks.pop(channel, None)


class _LoopLayer(RedisPubSubLoopLayer):  # type: ignore[misc]
    """The per-event-loop layer, with the sinks of local channels."""

    def __init__(self, hosts: Any = None, **kwargs: Any) -> None:
        super().__init__(hosts, **kwargs)
        self.sinks: dict[str, Sink] = {}
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]


class _Shard(RedisSingleShardConnection):  # type: ignore[misc]
    """One Redis connection's receive loop, which routes job updates to sinks."""

    channel_layer: _LoopLayer

    _gap_started: float | None = None
    _resyncs: set[asyncio.Task[None]] | None = None

    async def _do_receiving(self) -> None:
        while True:
            try:
                if self._pubsub is not None and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=READ_TIMEOUT
                    )
                    if self._gap_started is not None:  # the read re-subscribed
                        self._resubscribed(self._gap_started)
                    if message is not None:
                        await self._route(message["channel"], message["data"])
                else:
                    await asyncio.sleep(READ_TIMEOUT)
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

    def _resubscribed(self, gap_started: float) -> None:
        """Hold every feed back, then replay what the gap cost them (see jobupdates.resync)."""
        from jobupdates.feed import Feed
        from jobupdates.resync import resync

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
        send: dict[str, Any] | None = None
        if layer.sinks:
            event = layer.channel_layer.deserialize(data)
            if event.get("type") == JOB_UPDATE_EVENT:
                send = job_update_send(event)
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
            except Exception:  # one broken connection must not stop the fan-out
                logger.exception("direct send to %s failed; it falls back to its queue", channel)
                layer.sinks.pop(channel, None)
        if send is not None:  # once per update and process, for the registry and /metrics
            counters.fanout(delivered, event.get(RECEIVED_AT))
