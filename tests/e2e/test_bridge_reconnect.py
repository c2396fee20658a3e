"""The bridge is back the moment Redis is: no backoff sleep once Redis answers.

What workers publish while no bridge is subscribed is lost, so a bridge whose
backoff has grown must not sleep on after Redis returns. Here the backoff is
set to 600 s: only the bridge's probe can bring it back within the wait.
"""

from __future__ import annotations

import time

import pytest

from harness.clients import login, recv_json, welcomed, ws_connect
from harness.updates import job_update
from tests.conftest import STAFF, Stack, _stack
from tests.support.channel_layer import wait_for_daphne_subscribed

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow_backoff_stack(redis_server, e2e_database):
    yield from _stack(
        redis_server,
        e2e_database,
        "fast",
        JOBUPDATES_RECONNECT_INITIAL="600",
        JOBUPDATES_RECONNECT_MAX="600",
    )


async def test_the_bridge_resubscribes_as_soon_as_redis_answers(slow_backoff_stack: Stack, publish):
    stack = slow_backoff_stack
    cookie = login(stack.port, *STAFF)
    async with ws_connect(stack.port, cookie) as ws:
        await welcomed(ws)
        mark = stack.bridge.mark()
        stack.redis.stop()
        stack.bridge.wait_for(
            r"-> backing_off: lost Redis .* sooner once Redis answers", after=mark
        )
        started = time.monotonic()
        stack.redis.start()
        stack.bridge.wait_for(r"-> subscribed: .* as the active bridge", after=mark, timeout=30)
        print(f"\nbridge subscribed again {time.monotonic() - started:.2f}s after Redis started")
        wait_for_daphne_subscribed(stack.redis.url)
        publish(job_update("after-restart", "completed"))
        frame = await recv_json(ws, timeout=10)
        if frame["type"] == "reset":  # the restarted Redis lost the history
            frame = await recv_json(ws, timeout=10)
        assert (frame["job_id"], frame["status"]) == ("after-restart", "completed")
