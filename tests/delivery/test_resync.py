"""Closing a server process's subscription gap: the plan per feed, and the replay
against a real throwaway Redis whose pub/sub connection is killed."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from jobupdates.delivery.feed import Feed
from jobupdates.delivery.layers import JobUpdatesChannelLayer
from jobupdates.delivery.resync import Plan, plan_resync
from jobupdates.history import History
from jobupdates.protocol import JOB_UPDATE_EVENT, JobUpdate
from jobupdates.protocol.positions import Position, with_position
from tests.support.channel_layer import Recorder

GROUP = "jobupdates.all"
P = Position


@pytest.mark.parametrize(
    ("start", "oldest", "newest", "plan"),
    [
        (P(5, 0), P(1, 0), P(9, 0), Plan.REPLAY),
        (P(1, 0), P(1, 0), P(9, 0), Plan.REPLAY),
        (P(9, 0), P(1, 0), P(9, 0), Plan.REPLAY),  # nothing newer: nothing to replay
        (P(5, 0), None, None, Plan.RESET),  # empty: nothing to go on
        (P(10, 0), P(1, 0), P(9, 0), Plan.RESET),  # behind the point: positions went back
        (P(5, 0), P(6, 0), P(9, 0), Plan.RESET_THEN_ALL),  # began after the point
        (P(5, 1), P(5, 2), P(5, 2), Plan.RESET_THEN_ALL),
        (P(0, 0), P(5, 2), P(9, 0), Plan.REPLAY),  # the history was empty: nothing before
        (P(0, 0), None, None, Plan.REPLAY),
    ],
)
def test_plan_resync(start, oldest, newest, plan):
    assert plan_resync(start, oldest, newest) is plan


@pytest.fixture
async def gap(redis_server, settings):
    """A layer with one live all-jobs feed, and a way to record then publish updates."""
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    layer = JobUpdatesChannelLayer(hosts=[{"address": redis_server.url, "socket_timeout": 30}])
    client = aioredis.Redis.from_url(redis_server.url)
    history = History.from_conf(client)
    socket = Recorder()
    feed = Feed(socket)
    await feed.go_live()
    channel = await layer.new_channel()
    layer.attach(channel, feed)
    await layer.group_add(GROUP, channel)

    async def publish(seq: int) -> None:
        frame = JobUpdate("j", "queued", {"seq": seq}).to_frame()
        [position] = (await history.append_many([("j", frame)])).positions
        text = with_position(frame, position)
        event = {"type": JOB_UPDATE_EVENT, "text": text, "job_id": "j", "position": position}
        await layer.group_send(GROUP, event)

    yield client, socket, publish
    await layer.flush()
    await client.aclose()


def kinds(socket: Recorder) -> list[object]:
    """Each frame's update seq, or its type if it is not an update."""
    frames = [json.loads(text) for text in socket.texts]
    return [f["data"]["seq"] if f["type"] == "job_update" else f["type"] for f in frames]


async def test_updates_published_while_the_subscription_was_down_are_replayed(gap):
    """Redis stays up but drops this process's pub/sub connection (CLIENT KILL)."""
    client, socket, publish = gap
    await publish(0)
    await socket.wait_for(1)
    assert await client.client_kill_filter(_type="pubsub") == 1
    for seq in range(1, 4):  # the layer waits a second before it re-subscribes
        await publish(seq)
    await socket.wait_for(4)
    for seq in range(4, 6):
        await publish(seq)
    await socket.wait_for(6)
    assert kinds(socket) == list(range(6))


async def test_a_history_lost_during_the_gap_is_a_reset_then_all_it_holds_since(gap):
    """Redis lost its data while the subscription was down (a restart without
    persistence, here FLUSHALL): the feed cannot know what it missed before, so
    it gets a reset, then every update recorded since, then the live ones."""
    client, socket, publish = gap
    for seq in range(3):
        await publish(seq)
    await socket.wait_for(3)
    assert await client.client_kill_filter(_type="pubsub") == 1
    await client.flushall()
    for seq in range(3, 6):  # recorded in the new history, published to nobody
        await publish(seq)
    await socket.wait_for(7)
    await publish(6)
    await socket.wait_for(8)
    assert kinds(socket) == [0, 1, 2, "reset", 3, 4, 5, 6]
    assert json.loads(socket.texts[3])["reason"] == "gap_not_covered"
