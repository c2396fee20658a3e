"""Waiting that a stop request cuts short (a pause; a backoff that ends once Redis
answers again) and stopping on a signal: the bridge's loops share them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Protocol

from redis.exceptions import RedisError

from jobupdates import redis_client

__all__ = ["PROBE_INTERVAL", "Stoppable", "back_off", "pause", "run_until_signalled"]

logger = logging.getLogger("jobupdates.ingest.bridge")

PROBE_INTERVAL = 0.2
"""Seconds between two PINGs while backing off (see :func:`back_off`)."""


class Stoppable(Protocol):
    """What :func:`run_until_signalled` runs: the bridge."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stopping`` is set meanwhile (or already)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)


async def back_off(stopping: asyncio.Event, url: str, delay: float, *, probing: bool) -> bool:
    """Wait ``delay`` seconds, or, if ``probing``, only until Redis answers again.

    Whatever is published while no bridge is subscribed is lost, so a bridge
    whose backoff has grown must not sleep on once Redis is back: it PINGs
    every :data:`PROBE_INTERVAL` and reconnects at the first answer. Return
    whether it woke early.
    """
    if not probing:
        await pause(stopping, delay)
        return False
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay
    probe = redis_client.new_async_client(redis_client.Use.CORE, url)
    try:
        while (left := deadline - loop.time()) > 0:
            await pause(stopping, min(PROBE_INTERVAL, left))
            if stopping.is_set():
                return False
            try:
                await asyncio.wait_for(probe.ping(), PROBE_INTERVAL)
            except (RedisError, OSError, TimeoutError):
                continue
            logger.info("bridge: Redis answers again; reconnecting now")
            return True
        return False
    finally:
        await probe.aclose()


async def run_until_signalled(bridge: Stoppable) -> None:
    """Run ``bridge`` until SIGINT or SIGTERM, then stop it gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stop_on_signal, bridge, signum)
    try:
        await bridge.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _stop_on_signal(bridge: Stoppable, signum: int) -> None:
    logger.info("received %s; stopping", signal.Signals(signum).name)
    bridge.stop()
