"""The channel layer over two Redis (channels_redis shards), against real servers.

A group's messages and a channel's go to the shard its name hashes to; a
process's mailboxes are subscribed on every shard. Another process (a stock
channels_redis layer, as the bridge or the admin would send with) reaches
groups, sinks and mailboxes on either shard.
"""

from __future__ import annotations

import json

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer

from botrix_site.redis_server import RedisServer
from jobupdates.delivery.layers import JobUpdatesChannelLayer
from jobupdates.protocol import JOB_UPDATE_EVENT
from tests.delivery.test_mailboxes import Inbox
from tests.support.channel_layer import Recorder


@pytest.fixture
async def sharded():
    servers = [RedisServer().start(), RedisServer().start()]
    hosts = [{"address": server.url, "socket_timeout": 30} for server in servers]
    ours, sender = JobUpdatesChannelLayer(hosts=hosts), RedisPubSubChannelLayer(hosts=hosts)
    yield ours, sender, servers
    await ours.flush()
    await sender.flush()
    for server in servers:
        server.stop()


def groups_on_each_shard(layer: JobUpdatesChannelLayer) -> tuple[str, str]:
    """Two group names that hash to different shards."""
    loop_layer = layer._get_layer()
    by_shard: dict[int, str] = {}
    for n in range(100):
        name = f"jobs-{n}"
        shard = loop_layer._get_shard(loop_layer._get_group_channel_name(name))
        index = loop_layer._shards.index(shard)
        by_shard.setdefault(index, name)
        if len(by_shard) == 2:
            return by_shard[0], by_shard[1]
    raise AssertionError("expected groups on both shards")


async def test_groups_sinks_and_mailboxes_work_on_both_shards(sharded):
    ours, sender, servers = sharded
    first, second = groups_on_each_shard(ours)
    sinks, inboxes = [Recorder(), Recorder()], [Inbox(), Inbox()]
    for group, sink, inbox in zip((first, second), sinks, inboxes, strict=True):
        channel = await ours.new_mailbox(inbox)
        ours.attach(channel, sink)
        await ours.group_add(group, channel)
        await sender.group_send(
            group, {"type": JOB_UPDATE_EVENT, "text": json.dumps({"seq": group})}
        )
        await sender.send(channel, {"type": "jobupdates.disconnect", "by": group})
    for group, sink, inbox in zip((first, second), sinks, inboxes, strict=True):
        await sink.wait_for(1)
        assert sink.seqs() == [group]
        await inbox.wait_for(1)
        assert inbox.messages == [{"type": "jobupdates.disconnect", "by": group}]
    loop_layer = ours._get_layer()
    for server, group in zip(servers, (first, second), strict=True):
        client = redis.Redis.from_url(server.url, socket_timeout=5)
        channels = {c.decode() for c in client.pubsub_channels()}
        assert loop_layer._get_group_channel_name(group) in channels, "expected it on its shard"
        assert client.pubsub_numpat() == 1, "expected the mailboxes' pattern on every shard"
        client.close()
