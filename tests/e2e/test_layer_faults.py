"""Bad channel-layer input does not stop a Daphne process's fan-out.

Another process (a bridge of another version, a stray script) puts a
malformed job-update event, or bytes that are not a layer message at all,
on the job-updates group. The Daphne process drops it with its reason and
goes on: a worker's next update still reaches the client, and the admin's
disconnect (a direct message to the client's channel) still closes it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from websockets.asyncio.client import ClientConnection

from harness.clients import recv_json, welcomed, ws_connect
from jobupdates.delivery.layers import SINK_FAILED_EVENT
from jobupdates.monitoring.reading import read_snapshot
from jobupdates.monitoring.registry import DISCONNECT_EVENT
from jobupdates.protocol import JOB_UPDATE_EVENT
from tests.conftest import LAYER_SETTINGS, Stack
from tests.support.channel_layer import group_channel
from tests.support.clients import closing_error, without_position

pytestmark = pytest.mark.e2e

GROUP = "jobupdates.all"
"""JOBUPDATES_GROUP's default, the group the stack's consumers join."""
UPDATE = {"job_id": "j-1", "status": "completed", "data": {"k": "v"}}
EXPECTED = {"type": "job_update", "job_id": "j-1", "status": "completed", "data": {"k": "v"}}


@pytest.fixture
async def other_process(stack: Stack) -> AsyncIterator[Any]:
    """A channel layer of the stack's kind on the same Redis (default prefix), as another
    process would have."""
    hosts = [{"address": stack.redis.url, "socket_timeout": 30}]
    if stack.env["DJANGO_SETTINGS_MODULE"] == LAYER_SETTINGS["fast"]:
        pubsub = RedisPubSubChannelLayer(hosts=hosts)
        yield pubsub
        await pubsub.flush()
    else:
        core = RedisChannelLayer(hosts=hosts)
        yield core
        await core.close_pools()


async def channel_of(stack: Stack, client_id: str) -> str:
    """The client's channel name, as the admin reads it from the registry."""
    client = redis.Redis.from_url(stack.redis.url)
    deadline = time.monotonic() + 5
    try:
        while True:
            snapshot = await asyncio.to_thread(read_snapshot, client)
            for record in snapshot.clients:
                if record.client_id == client_id:
                    return record.channel_name
            assert time.monotonic() < deadline, f"expected {client_id} in the registry"
            await asyncio.sleep(0.05)
    finally:
        client.close()


async def still_served(
    stack: Stack, layer: Any, ws: ClientConnection, client_id: str, publish: Any
) -> None:
    """A worker's update reaches the client, then the admin's disconnect closes it (4000)."""
    publish(json.dumps(UPDATE))
    assert without_position(await recv_json(ws)) == EXPECTED
    channel = await channel_of(stack, client_id)
    await layer.send(channel, {"type": DISCONNECT_EVENT, "by": "test"})
    error, code = await closing_error(ws)
    assert (error["code"], code) == ("disconnected_by_staff", 4000), error


def metrics(stack: Stack, cookie: str) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{stack.port}/metrics")
    request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


async def test_a_malformed_job_update_is_dropped_and_the_client_is_still_served(
    stack, staff_cookie, publish, other_process
):
    async with ws_connect(stack.port, staff_cookie) as ws:
        client_id = await welcomed(ws)
        await other_process.group_send(GROUP, {"type": JOB_UPDATE_EVENT})  # no "text"
        await still_served(stack, other_process, ws, client_id, publish)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_the_fast_layer_logs_and_counts_what_it_drops(
    stack, staff_cookie, publish, other_process
):
    mark = stack.daphne.mark()
    async with ws_connect(stack.port, staff_cookie) as ws:
        client_id = await welcomed(ws)
        await other_process.group_send(GROUP, {"type": JOB_UPDATE_EVENT, "text": 7})
        stack.daphne.wait_for(
            r"channel layer dropped a message: malformed_event: .*'text'", after=mark
        )
        assert publish(b"\xc1 not msgpack", channel=group_channel()) == 1
        stack.daphne.wait_for(r"channel layer dropped a message: undecodable: ", after=mark)
        await still_served(stack, other_process, ws, client_id, publish)
    text = metrics(stack, staff_cookie)
    assert 'jobupdates_layer_errors_total{reason="malformed_event"} 1.0' in text, text
    assert 'jobupdates_layer_errors_total{reason="undecodable"} 1.0' in text, text


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_direct_message_the_consumer_cannot_handle_leaves_it_served(
    stack, staff_cookie, publish, other_process
):
    """Sent to a connection's mailbox by another process: logged, the connection stays."""
    mark = stack.daphne.mark()
    async with ws_connect(stack.port, staff_cookie) as ws:
        client_id = await welcomed(ws)
        channel = await channel_of(stack, client_id)
        await other_process.send(channel, {"type": "no.such.handler"})
        stack.daphne.wait_for(
            rf"client {client_id}: could not handle 'no.such.handler' "
            r"\(ValueError\(.expected a message",
            after=mark,
        )
        await still_served(stack, other_process, ws, client_id, publish)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
async def test_a_failed_delivery_closes_that_connection_with_1011_at_once(
    stack, staff_cookie, other_process
):
    """Daphne's ``websocket.close`` cannot send 1011 (autobahn refuses it, and the
    application used to fail, closing a second later with a traceback); the
    consumer sends the close frame itself."""
    mark = stack.daphne.mark()
    async with ws_connect(stack.port, staff_cookie) as ws:
        client_id = await welcomed(ws)
        channel = await channel_of(stack, client_id)
        await other_process.send(channel, {"type": SINK_FAILED_EVENT, "reason": "test"})
        error, code = await closing_error(ws)
        assert (error["code"], code) == ("internal_error", 1011), error
    stack.daphne.wait_for(rf"client {client_id} disconnected", after=mark)
    assert not stack.daphne.matching(r"Traceback|invalid close code"), stack.daphne.output()
