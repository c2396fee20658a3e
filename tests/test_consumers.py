"""The consumer, driven in-process with WebsocketCommunicator.

The in-memory layer stands in for the channel layer (the fast path has its
own test), and a throwaway Redis for the history where replay is tested.
What needs a real server (close codes as browsers see them, the origin
header, tokens) is tested end to end in tests/e2e/.
"""

from __future__ import annotations

import json
import re

import pytest
import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, Permission, User

from jobupdates.access.admission import admission
from jobupdates.access.middleware import AUTH_ERROR, ORIGIN_OK
from jobupdates.consumers import JobUpdatesConsumer
from jobupdates.history import History
from jobupdates.protocol import JOB_UPDATE_EVENT, JobUpdate
from jobupdates.protocol.positions import with_position

GROUP = "jobupdates.all"


def communicator(user, query: str = "", **scope) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), f"/ws?{query}" if query else "/ws")
    comm.scope.update({"user": user, ORIGIN_OK: True, **scope})
    return comm


async def connected(user, query: str = "", **scope) -> WebsocketCommunicator:
    comm = communicator(user, query, **scope)
    assert (await comm.connect())[0]
    welcome = await comm.receive_json_from()
    assert welcome["type"] == "welcome", welcome
    return comm


async def refused(comm: WebsocketCommunicator) -> tuple[dict, int]:
    """Return the error frame and the close code of a refused connection."""
    assert (await comm.connect())[0], "expected accept-then-close, so the browser sees the code"
    error = await comm.receive_json_from()
    close = await comm.receive_output()
    assert close["type"] == "websocket.close"
    return error, close["code"]


async def send_update(job_id: str, status: str = "queued", position: str | None = None) -> str:
    frame = JobUpdate(job_id, status, None).to_frame()
    event = {"type": JOB_UPDATE_EVENT, "text": frame, "job_id": job_id, "position": position}
    await get_channel_layer().group_send(GROUP, event)
    return frame


@pytest.fixture
def staff():
    return User(pk=1, username="s", is_staff=True)


@pytest.fixture
def history_redis(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    return redis_server


# Admission


async def test_anonymous_gets_error_frame_then_4401():
    error, code = await refused(communicator(AnonymousUser()))
    assert error == {
        "type": "error",
        "code": "unauthenticated",
        "message": "log in to receive job updates",
    }
    assert code == 4401
    assert not get_channel_layer().groups.get(GROUP)


async def test_foreign_origin_is_4403_and_a_bad_token_is_4401(staff):
    error, code = await refused(communicator(staff, **{ORIGIN_OK: False}))
    assert (error["code"], code) == ("origin_not_allowed", 4403)
    error, code = await refused(communicator(staff, **{AUTH_ERROR: "expected a fresh token"}))
    assert (error["code"], error["message"], code) == (
        "invalid_token",
        "expected a fresh token",
        4401,
    )


async def test_anonymous_allowed_only_when_auth_and_permission_are_explicitly_off(settings):
    settings.JOBUPDATES_REQUIRE_AUTH = False
    error, code = await refused(communicator(AnonymousUser()))
    assert (error["code"], code) == ("forbidden", 4403)
    settings.JOBUPDATES_ALL_JOBS_PERMISSION = ""
    comm = await connected(AnonymousUser())
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_all_jobs_feed_needs_the_permission():
    from asgiref.sync import sync_to_async

    user = await sync_to_async(User.objects.create_user)("plain", password="x")
    error, code = await refused(communicator(user))
    assert (error["code"], code) == ("forbidden", 4403)
    assert "subscribe to your jobs with ?job=<id>" in error["message"]
    permission = await sync_to_async(Permission.objects.get)(codename="view_all_jobs")
    await sync_to_async(user.user_permissions.add)(permission)
    user = await sync_to_async(User.objects.get)(pk=user.pk)  # fresh permission cache
    comm = await connected(user)
    await comm.disconnect()


def only_mine(user, job_id: str) -> bool:
    return job_id.startswith("mine")


@pytest.mark.django_db(transaction=True)
async def test_job_subscriptions_follow_the_authorizer(settings, history_redis):
    from asgiref.sync import sync_to_async

    user = await sync_to_async(User.objects.create_user)("plain", password="x")
    error, code = await refused(communicator(user, "job=mine-1"))
    assert (error["code"], code) == ("job_forbidden", 4403), "the default denies non-staff"
    settings.JOBUPDATES_JOB_AUTHORIZER = "tests.test_consumers.only_mine"
    error, _ = await refused(communicator(user, "job=mine-1&job=theirs"))
    assert error["message"] == "not allowed to receive job(s) 'theirs'"
    comm = await connected(user, "job=mine-1")
    await send_update("theirs")
    mine = await send_update("mine-1")
    assert await comm.receive_from() == mine
    await comm.send_json_to({"type": "subscribe", "job_ids": ["theirs"]})
    assert (await comm.receive_json_from())["code"] == "job_forbidden"
    await comm.disconnect()


async def test_connection_limits_per_process_and_per_user(settings, staff):
    settings.JOBUPDATES_MAX_CONNECTIONS_PER_USER = 1
    first = await connected(staff)
    error, code = await refused(communicator(staff))
    assert (error["code"], code) == ("too_many_connections", 4429)
    settings.JOBUPDATES_MAX_CONNECTIONS_PER_PROCESS = 1
    error, code = await refused(communicator(User(pk=2, username="t", is_staff=True)))
    assert (error["code"], code) == ("server_full", 4503)
    await first.disconnect()
    second = await connected(staff)
    await second.disconnect()


async def test_bad_connect_queries_are_4400(staff, settings):
    error, code = await refused(communicator(staff, "job="))
    assert (error["code"], code) == ("invalid_job_ids", 4400)
    settings.JOBUPDATES_MAX_SUBSCRIPTIONS = 2
    error, code = await refused(communicator(staff, "job=a&job=b&job=c"))
    assert (error["code"], code) == ("too_many_subscriptions", 4400)


# Updates


async def test_welcome_then_job_updates_then_leave_group_on_disconnect(staff):
    comm = await connected(staff)
    layer = get_channel_layer()
    assert len(layer.groups[GROUP]) == 1
    frame = await send_update("j-1", "completed")
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


async def test_handlers_skip_the_close_old_connections_thread_hop(staff, monkeypatch):
    calls = []

    async def spy():
        calls.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", spy)
    comm = await connected(staff)
    frame = await send_update("j")
    assert await comm.receive_from() == frame
    await comm.disconnect()
    assert calls == []


async def test_unknown_layer_event_is_a_clear_error(staff):
    comm = await connected(staff)
    await get_channel_layer().group_send(GROUP, {"type": "no.such.event"})
    message = "expected a message type this consumer handles, got 'no.such.event'"
    with pytest.raises(ValueError, match=re.escape(message)):
        await comm.wait()


async def test_with_the_fast_layer_updates_bypass_the_consumer_handler(
    staff, redis_server, settings, monkeypatch
):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "jobupdates.delivery.layers.JobUpdatesChannelLayer",
            "CONFIG": {"hosts": [{"address": redis_server.url, "socket_timeout": 30}]},
        }
    }

    async def handler_must_not_run(self, event):
        raise AssertionError("expected the layer to write the update directly")

    monkeypatch.setattr(JobUpdatesConsumer, "job_update", handler_must_not_run)
    comm = await connected(staff)
    layer = get_channel_layer()
    frame = await send_update("j-9", "failed")
    assert await comm.receive_from(timeout=5) == frame
    await comm.disconnect()
    assert layer._get_layer().sinks == {}
    await layer.flush()


# Client frames and limits


async def test_ping_pong_and_error_frames(staff):
    comm = await connected(staff)
    await comm.send_to(text_data='{"type":"ping"}')
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.send_to(bytes_data=b"\x01")
    error = await comm.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "binary_frame")
    assert error["message"].startswith("expected a JSON text frame")
    await comm.disconnect()


async def test_a_client_that_keeps_sending_bad_frames_is_closed_4400(staff, settings):
    settings.JOBUPDATES_MAX_STRIKES = 3
    settings.JOBUPDATES_MAX_FRAME_BYTES = 100
    comm = await connected(staff)
    await comm.send_to(text_data="x" * 101)
    assert (await comm.receive_json_from())["code"] == "frame_too_large"
    await comm.send_to(text_data="nope")
    assert (await comm.receive_json_from())["code"] == "invalid_json"
    await comm.send_to(text_data='{"type":"dance"}')
    last = await comm.receive_json_from()
    assert last["code"] == "too_many_bad_frames"
    assert last["message"].startswith("closed after 3 bad or excess frames; last: expected type")
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4400}


async def test_a_flood_is_rate_limited_then_closed_4429(staff, settings):
    settings.JOBUPDATES_RATE_LIMIT = 0.01
    settings.JOBUPDATES_RATE_BURST = 2
    settings.JOBUPDATES_MAX_STRIKES = 2
    comm = await connected(staff)
    for _ in range(2):
        await comm.send_to(text_data='{"type":"ping"}')
        assert await comm.receive_json_from() == {"type": "pong"}
    await comm.send_to(text_data='{"type":"ping"}')
    assert (await comm.receive_json_from())["code"] == "rate_limited"
    await comm.send_to(text_data='{"type":"ping"}')
    assert (await comm.receive_json_from())["code"] == "rate_limited"
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4429}


async def test_subscribe_narrows_the_feed_and_unsubscribe_acknowledges(staff, history_redis):
    comm = await connected(staff)
    await comm.send_json_to({"type": "unsubscribe", "job_ids": ["a"]})
    assert (await comm.receive_json_from())["code"] == "invalid_job_ids"
    await comm.send_json_to({"type": "subscribe", "job_ids": ["a", "b"]})
    assert await comm.receive_json_from() == {"type": "subscribed", "job_ids": ["a", "b"]}
    await send_update("c")
    frame = await send_update("a")
    assert await comm.receive_from() == frame, "expected only subscribed jobs now"
    await comm.send_json_to({"type": "unsubscribe", "job_ids": ["a"]})
    assert await comm.receive_json_from() == {"type": "unsubscribed", "job_ids": ["a"]}
    await send_update("a")
    frame = await send_update("b")
    assert await comm.receive_from() == frame
    await comm.disconnect()


async def test_too_many_subscriptions_is_an_error_frame(staff, settings, history_redis):
    settings.JOBUPDATES_MAX_SUBSCRIPTIONS = 2
    comm = await connected(staff, "job=a&job=b")
    await comm.send_json_to({"type": "subscribe", "job_ids": ["c"]})
    error = await comm.receive_json_from()
    assert (error["code"], error["message"]) == (
        "too_many_subscriptions",
        "expected at most 2 subscriptions, got 3",
    )
    await comm.disconnect()


# Replay and state


async def record(redis_server, job_id: str, status: str = "queued") -> str:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        frame = JobUpdate(job_id, status).to_frame()
        [position] = (await History.from_conf(client).append_many([(job_id, frame)])).positions
        return position
    finally:
        await client.aclose()


async def test_since_replays_what_was_missed_before_live_updates(staff, history_redis):
    first = await record(history_redis, "a")
    await record(history_redis, "b")
    await record(history_redis, "c")
    comm = await connected(staff, f"since={first}")
    replayed = [await comm.receive_json_from() for _ in range(2)]
    assert [f["job_id"] for f in replayed] == ["b", "c"]
    assert all(f["type"] == "job_update" and f["position"] for f in replayed)
    frame = await send_update("d")
    assert await comm.receive_from() == frame
    await comm.disconnect()


async def test_with_another_layer_each_connection_keeps_the_historys_order(staff, history_redis):
    """The ordinary path (a layer other than the fast one): a copy of an update is
    dropped, and one named as the predecessor but never received is read first."""
    client = aioredis.Redis.from_url(history_redis.url)
    history = History.from_conf(client)
    frames = [JobUpdate(job, "queued").to_frame() for job in ("a", "b", "c")]
    appended = await history.append_many([(j, f) for j, f in zip("abc", frames, strict=True)])
    await client.aclose()
    a, b, c = appended.positions
    comm = await connected(staff, f"since={a}")
    assert [(await comm.receive_json_from())["job_id"] for _ in range(2)] == ["b", "c"]

    async def event(job_id: str, position: str, prev: str) -> None:
        frame = with_position(JobUpdate(job_id, "queued").to_frame(), position)
        message = {"type": JOB_UPDATE_EVENT, "text": frame, "job_id": job_id}
        await get_channel_layer().group_send(GROUP, {**message, "position": position, "prev": prev})

    await event("c", c, b)  # published after the replay read it: dropped
    client = aioredis.Redis.from_url(history_redis.url)
    later = await History.from_conf(client).append_many(
        [(job, JobUpdate(job, "queued").to_frame()) for job in ("d", "e")]
    )
    await client.aclose()
    d, e = later.positions
    await event("e", e, d)  # "d" was recorded, never sent: read from the history first
    assert [(await comm.receive_json_from())["job_id"] for _ in range(2)] == ["d", "e"]
    assert await comm.receive_nothing()
    await comm.disconnect()


@pytest.mark.parametrize(
    ("since", "reason"),
    [("1-0", "unknown_position"), ("garbage", "invalid_position")],
)
async def test_a_position_that_cannot_be_resumed_is_a_reset(staff, history_redis, since, reason):
    comm = await connected(staff, f"since={since}")
    reset = await comm.receive_json_from()
    assert (reset["type"], reset["reason"]) == ("reset", reason)
    await comm.disconnect()


async def test_subscribing_sends_the_jobs_current_state_first(staff, history_redis):
    await record(history_redis, "a", "queued")
    position = await record(history_redis, "a", "processing")
    comm = await connected(staff, "job=a&job=unknown")
    state = await comm.receive_json_from()
    assert state == {
        "type": "job_state",
        "job_id": "a",
        "status": "processing",
        "data": None,
        "position": position,
    }
    await comm.disconnect()


async def test_history_outage_is_a_reset_not_a_silent_gap(staff, settings):
    settings.JOBUPDATES_REDIS_URL = "redis://127.0.0.1:9/0"
    comm = await connected(staff, "since=5-0")
    reset = await comm.receive_json_from(timeout=10)
    assert (reset["type"], reset["reason"]) == ("reset", "history_unavailable")
    frame = await send_update("x")
    assert json.loads(await comm.receive_from()) == json.loads(frame)
    await comm.disconnect()


async def test_the_registry_can_be_turned_off(staff, settings, monkeypatch):
    settings.JOBUPDATES_REGISTRY = False

    def must_not_register():
        raise AssertionError("expected no registry with JOBUPDATES_REGISTRY off")

    monkeypatch.setattr("jobupdates.consumers.get_registry", must_not_register)
    comm = await connected(staff)
    await comm.disconnect()


# Teardown and closing


async def test_frames_queued_behind_the_close_are_not_handled(staff, settings):
    settings.JOBUPDATES_MAX_STRIKES = 3
    comm = await connected(staff)
    for n in range(6):  # three more than the limit, all queued before the close
        await comm.send_to(text_data=f"not json {n}")
    codes = [(await comm.receive_json_from())["code"] for _ in range(3)]
    assert codes == ["invalid_json", "invalid_json", "too_many_bad_frames"]
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4400}
    assert await comm.receive_nothing(timeout=0.2), "expected nothing after the close"
    await comm.disconnect()
    assert admission.total == 0


async def test_teardown_runs_once_when_the_consumer_crashes(staff, monkeypatch):
    async def broken_group_add(self, group, channel):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(type(get_channel_layer()), "group_add", broken_group_add)
    comm = communicator(staff)
    await comm.connect()
    with pytest.raises(ConnectionError):
        await comm.wait()
    assert admission.total == 0, "expected the crashed consumer's slot released"
    assert admission.per_user == {}


async def test_each_teardown_step_fails_on_its_own(staff, monkeypatch, caplog):
    async def broken_group_discard(self, group, channel):
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(type(get_channel_layer()), "group_discard", broken_group_discard)
    comm = await connected(staff)
    await comm.disconnect()
    assert admission.total == 0
    assert "group discard failed on disconnect (ConnectionError: Redis went away)" in caplog.text
    assert re.search(r"client [0-9a-f]{32} disconnected \(code 1000\)", caplog.text)


async def test_a_send_after_the_close_is_not_an_error(staff):
    from autobahn.exception import Disconnected

    sent = []

    async def server_send(message):
        if sent and sent[-1]["type"] == "websocket.close":
            raise Disconnected("Attempt to send on a closed protocol")
        sent.append(message)

    consumer = JobUpdatesConsumer()
    consumer.client_id = "c"
    guarded = consumer.guarded(server_send)
    await guarded({"type": "websocket.send", "text": "a"})
    await guarded({"type": "websocket.close", "code": 1000})
    await guarded({"type": "websocket.send", "text": "b"})
    assert [m["type"] for m in sent] == ["websocket.send", "websocket.close"]
    assert consumer.closed
    assert consumer.closing

    racing = JobUpdatesConsumer()  # the client closed first: Daphne's send raises
    racing.client_id = "r"

    async def gone(message):
        raise Disconnected("Attempt to send on a closed protocol")

    await racing.guarded(gone)({"type": "websocket.send", "text": "a"})
    assert racing.closed


async def test_a_malformed_update_is_dropped_and_the_consumer_goes_on(staff, caplog):
    comm = await connected(staff)
    await get_channel_layer().group_send(GROUP, {"type": JOB_UPDATE_EVENT})
    frame = await send_update("after")
    assert await comm.receive_from() == frame
    assert "dropped a message: malformed_event: client " in caplog.text
    await comm.disconnect()


async def test_ordinary_path_counts_only_updates_it_sent(staff, history_redis):
    from jobupdates.monitoring.deliveries import counters

    comm = await connected(staff, "job=mine")
    before = counters.deliveries
    await send_update("other")
    frame = await send_update("mine")
    assert await comm.receive_from() == frame
    assert counters.deliveries - before == 1, "expected the filtered-out update not counted"
    await comm.disconnect()


async def test_a_failed_sink_closes_only_that_connection_with_1011(staff):
    before = set(get_channel_layer().groups.get(GROUP, ()))
    comm = await connected(staff)
    (channel,) = set(get_channel_layer().groups[GROUP]) - before
    other = await connected(staff)
    event = {"type": "jobupdates.sink_failed", "reason": "its direct send raised OSError"}
    await get_channel_layer().send(channel, event)
    error = await comm.receive_json_from()
    assert (error["type"], error["code"]) == ("error", "internal_error")
    assert await comm.receive_output() == {"type": "websocket.close", "code": 1011}
    frame = await send_update("still")
    assert await other.receive_from() == frame
    await comm.disconnect()
    await other.disconnect()
