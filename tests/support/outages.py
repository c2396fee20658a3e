"""Outages the tests cause on purpose, and the wait for the stack to come back."""

from __future__ import annotations

import time

from botrix_site.redis_server import RedisServer
from harness.processes import Process
from tests.support.channel_layer import wait_for_daphne_subscribed


def restart_redis(redis: RedisServer, bridge: Process) -> float:
    """Stop Redis (its data goes with it) and start it again on the same port once the
    bridge noticed; return when it started, once the bridge is the active one again
    and a Daphne is subscribed to the all-jobs group.

    In async tests: ``await asyncio.to_thread(restart_redis, stack.redis, stack.bridge)``.
    """
    mark = bridge.mark()
    redis.stop()
    bridge.wait_for(r"-> backing_off: lost Redis", after=mark)
    started = time.monotonic()
    redis.start()
    bridge.wait_for(r"-> subscribed: .* as the active bridge", after=mark, timeout=10)
    wait_for_daphne_subscribed(redis.url)
    return started
