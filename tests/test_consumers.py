"""The consumer, driven in-process with WebsocketCommunicator and the in-memory layer."""

from __future__ import annotations

import json
import re

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from jobupdates.consumers import JobUpdatesConsumer
from jobupdates.protocol import JOB_UPDATE_EVENT, JobUpdate

GROUP = "jobupdates.all"


def communicator(user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), "/ws")
    comm.scope["user"] = user
    return comm


@pytest.fixture
def staff():
    return User(username="s", is_staff=True)


async def test_anonymous_gets_error_frame_then_4401():
    comm = communicator(AnonymousUser())
    connected, _ = await comm.connect()
    assert connected, "expected accept-then-close, so the browser sees the code"
    assert await comm.receive_json_from() == {
        "type": "error",
        "code": "unauthenticated",
        "message": "log in to receive job updates",
    }
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4401}
    assert not get_channel_layer().groups.get(GROUP)


async def test_anonymous_allowed_when_auth_is_explicitly_off(settings):
    settings.JOBUPDATES_REQUIRE_AUTH = False
    comm = communicator(AnonymousUser())
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from())["type"] == "welcome"
    await comm.disconnect()


async def test_welcome_then_job_updates_then_leave_group_on_disconnect(staff):
    comm = communicator(staff)
    assert (await comm.connect())[0]
    welcome = await comm.receive_json_from()
    assert welcome["type"] == "welcome"
    assert len(welcome["client_id"]) == 32
    layer = get_channel_layer()
    assert len(layer.groups[GROUP]) == 1
    frame = JobUpdate("j-1", "completed", {"k": "v"}).to_frame()
    await layer.group_send(GROUP, {"type": JOB_UPDATE_EVENT, "text": frame})
    assert await comm.receive_from() == frame
    await comm.disconnect()
    assert not layer.groups.get(GROUP)


async def test_client_ids_are_unique(staff):
    ids = set()
    for _ in range(3):
        comm = communicator(staff)
        await comm.connect()
        ids.add((await comm.receive_json_from())["client_id"])
        await comm.disconnect()
    assert len(ids) == 3


async def test_ping_pong_and_error_frames(staff):
    comm = communicator(staff)
    await comm.connect()
    await comm.receive_json_from()
    await comm.send_to(text_data='{"type":"ping"}')
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.send_to(bytes_data=b"\x01")
    error = await comm.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] == "binary_frame"
    assert error["message"].startswith("expected a JSON text frame")
    await comm.disconnect()


async def test_handlers_skip_the_close_old_connections_thread_hop(staff, monkeypatch):
    calls = []

    async def spy():
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", spy)
    comm = communicator(staff)
    await comm.connect()
    await comm.receive_json_from()
    await get_channel_layer().group_send(
        GROUP, {"type": JOB_UPDATE_EVENT, "text": json.dumps({"a": 1})}
    )
    assert await comm.receive_json_from() == {"a": 1}
    await comm.disconnect()
    assert calls == []


async def test_unknown_layer_event_is_a_clear_error(staff):
    comm = communicator(staff)
    await comm.connect()
    await comm.receive_json_from()
    await get_channel_layer().group_send(GROUP, {"type": "no.such.event"})
    with pytest.raises(
        ValueError,
        match=re.escape("expected a message type this consumer handles, got 'no.such.event'"),
    ):
        await comm.wait()


async def test_with_the_fast_layer_updates_bypass_the_consumer_handler(
    staff, redis_server, settings, monkeypatch
):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "jobupdates.layers.JobUpdatesChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_server.url, "socket_timeout": 30}]},
        }
    }

    async def handler_must_not_run(self, event):
        raise AssertionError("expected the layer to write the update directly")

    monkeypatch.setattr(JobUpdatesConsumer, "job_update", handler_must_not_run)
    comm = communicator(staff)
    assert (await comm.connect())[0]
    await comm.receive_json_from()
    layer = get_channel_layer()
    frame = JobUpdate("j-9", "failed", None).to_frame()
    await layer.group_send(GROUP, {"type": JOB_UPDATE_EVENT, "text": frame})
    assert await comm.receive_from(timeout=5) == frame
    await comm.disconnect()
    assert layer._get_layer().sinks == {}
    await layer.flush()
