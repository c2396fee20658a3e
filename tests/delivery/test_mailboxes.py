"""Mailboxes: process-local channels on one pattern subscription, against a real Redis."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import redis.asyncio as aioredis
from channels_redis.pubsub import RedisPubSubChannelLayer

from jobupdates.delivery.layers import JobUpdatesChannelLayer
from jobupdates.delivery.mailboxes import SEPARATOR, process_channel
from jobupdates.protocol import JOB_UPDATE_EVENT

GROUP = "jobupdates.all"


class Inbox:
    """What a consumer's ``deliver`` got, with a way to wait for it."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.changed = asyncio.Event()

    def __call__(self, message: dict) -> None:
        self.messages.append(message)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.messages) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)


@pytest.fixture
async def layers(redis_server):
    hosts = [{"address": redis_server.url, "socket_timeout": 30}]
    ours = JobUpdatesChannelLayer(hosts=hosts)
    stock = RedisPubSubChannelLayer(hosts=hosts)  # another process, with channels_redis's layer
    yield ours, stock
    await ours.flush()
    await stock.flush()


def test_the_process_channel_is_short_and_free_of_glob_characters():
    name = process_channel("asgi", "a-very-long-pod-name-" * 5 + "*[a]?:12:ab cd")
    assert re.fullmatch(r"asgispecific\.[0-9a-f]{16}!", name), name
    assert name.endswith(SEPARATOR)
    assert process_channel("asgi", "h:1:a") != process_channel("asgi", "h:2:a")
    assert len(name) + 32 < 100, "expected a mailbox name under Channels' 100 characters"


async def test_a_send_from_any_process_reaches_the_mailbox(layers, redis_server):
    ours, stock = layers
    inbox = Inbox()
    channel = await ours.new_mailbox(inbox)
    assert SEPARATOR in channel
    await stock.send(channel, {"type": "jobupdates.disconnect", "by": "stock"})
    await ours.send(channel, {"type": "jobupdates.disconnect", "by": "ours"})
    await inbox.wait_for(2)
    assert [m["by"] for m in inbox.messages] == ["stock", "ours"]
    client = aioredis.Redis.from_url(redis_server.url)
    try:  # one pattern for the process, no channel per mailbox
        assert await client.pubsub_numpat() == 1
        second = await ours.new_mailbox(Inbox())
        assert await client.pubsub_numpat() == 1
        assert not [c for c in await client.pubsub_channels() if SEPARATOR.encode() in c]
    finally:
        await client.aclose()
    ours.close_mailbox(second)


async def test_a_group_member_without_a_sink_gets_group_messages_in_its_mailbox(layers):
    ours, stock = layers
    inbox = Inbox()
    channel = await ours.new_mailbox(inbox)
    await ours.group_add(GROUP, channel)
    await stock.group_send(GROUP, {"type": "job.other", "n": 1})
    await inbox.wait_for(1)
    assert inbox.messages == [{"type": "job.other", "n": 1}]


async def test_what_does_not_decode_is_dropped_and_the_next_message_arrives(
    layers, redis_server, caplog
):
    ours, stock = layers
    inbox = Inbox()
    channel = await ours.new_mailbox(inbox)
    client = aioredis.Redis.from_url(redis_server.url)
    caplog.set_level(logging.WARNING)
    try:
        await client.publish(channel, b"\xc1 not msgpack")
        await stock.send(channel, {"no": "type"})
    finally:
        await client.aclose()
    await stock.send(channel, {"type": JOB_UPDATE_EVENT + ".x"})
    await inbox.wait_for(1)
    assert inbox.messages == [{"type": JOB_UPDATE_EVENT + ".x"}]
    text = caplog.text
    assert "undecodable: expected a layer message for" in text, text
    assert "malformed_event: expected a dict with a str 'type'" in text, text


async def test_a_closed_mailbox_gets_nothing_and_the_others_still_do(layers):
    ours, stock = layers
    gone, kept = Inbox(), Inbox()
    closed = await ours.new_mailbox(gone)
    channel = await ours.new_mailbox(kept)
    ours.close_mailbox(closed)
    await stock.send(closed, {"type": "a"})
    await stock.send(channel, {"type": "b"})
    await kept.wait_for(1)
    assert gone.messages == []
    assert kept.messages == [{"type": "b"}]


async def test_the_pattern_is_subscribed_again_after_the_connection_drops(layers, redis_server):
    ours, stock = layers
    inbox = Inbox()
    channel = await ours.new_mailbox(inbox)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await client.client_kill_filter(_type="pubsub") == 1
        async with asyncio.timeout(10):  # the layer reconnects after about a second
            while await client.pubsub_numpat() < 1:
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    await stock.send(channel, {"type": "after"})
    await inbox.wait_for(1)
    assert inbox.messages == [{"type": "after"}]
