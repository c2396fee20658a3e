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

The job-updates group (``JOBUPDATES_GROUP``) is delivered in the history's
order, each update once, and what the process missed is read from the
history before anything newer (:class:`~jobupdates.delivery.fanout.JobGroup`):
an update naming a predecessor the process never got, or a subscription that
dropped and came back.

One bad message never stops the receive loop: bytes that do not decode and
malformed events are dropped, a sink that raises is detached and its
consumer asked to close (:data:`SINK_FAILED_EVENT`), and each fault is
logged (throttled) and counted (:mod:`jobupdates.delivery.faults`).

The layer is built on channels_redis's private names (its loop layer and
shard classes, their attributes, ``utils._wrap_close``), listed in
:mod:`jobupdates.delivery.internals` with the versions tested: without one
the project's server refuses to start (``jobupdates.E030``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from channels_redis import utils as redis_utils
from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from jobupdates.delivery.fanout import SINK_FAILED_EVENT, JobGroup, Sink, fan_out, job_update_send
from jobupdates.delivery.faults import Fault, LayerFaults
from jobupdates.delivery.mailboxes import Mailbox, mailbox_name, process_channel
from jobupdates.history import History
from jobupdates.monitoring.instance import instance_id
from jobupdates.protocol.events import JOB_UPDATE_EVENT, JobUpdateEvent, MalformedEvent
from jobupdates.protocol.logs import loggable
from jobupdates.redis_client import async_client

__all__ = [
    "SINK_FAILED_EVENT",  # re-exported from jobupdates.delivery.fanout
    "JobUpdatesChannelLayer",
    "MalformedEvent",  # re-exported from jobupdates.protocol.events
    "Sink",
    "job_update_send",
]

logger = logging.getLogger(__name__)


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
            redis_utils._wrap_close(self, loop)
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
        self._shards = [_Shard(host, self) for host in redis_utils.decode_hosts(hosts)]
        self.process_channel = process_channel(self.prefix, instance_id())
        from jobupdates.conf import conf

        self.jobs = JobGroup(
            self,
            self._get_group_channel_name(conf.GROUP),
            self.channel_layer.serialize,
            lambda: History.from_conf(async_client()),
        )

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

    async def subscribe(self, channel: str) -> None:
        """channels_redis's, without its lock when nothing is to be done (every
        handshake's ``group_add`` comes here): already subscribed, and no
        subscribe or unsubscribe under way. Before it subscribes to the job
        updates' group, the group notes where the history ends."""
        if channel in self._subscribed_to and not self._lock.locked():
            return
        jobs = self.channel_layer.jobs
        if channel == jobs.channel and channel not in self._subscribed_to:
            await jobs.start()
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
            try:
                if self._gap_started is not None:  # the read re-subscribed
                    await self._resubscribed()
                if message is not None:
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
        return message

    async def _resubscribed(self) -> None:
        """Deliver what the job updates' group missed meanwhile, before anything newer."""
        lost_at, self._gap_started = self._gap_started, None
        jobs = self.channel_layer.jobs
        if lost_at is not None and jobs.channel in self._subscribed_to:
            await jobs.resubscribed(lost_at)

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
        if event["type"] != JOB_UPDATE_EVENT:
            for channel in tuple(members):
                slot = layer.channels.get(channel)
                if slot is not None:
                    slot.put_nowait(data)
            return
        try:
            update = JobUpdateEvent.from_event(event)
        except MalformedEvent as exc:  # dropped for every member, queued or not
            layer.faults.record(Fault.MALFORMED_EVENT, f"on {name!r}: {exc}")
            return
        if name == layer.jobs.channel:
            await layer.jobs.receive(update, data)
        else:
            await fan_out(layer, members, update, lambda: data, layer.channel_layer.serialize)
