"""jobupdates.ingest.stopping: a wait that a stop request cuts short."""

from __future__ import annotations

import asyncio

from jobupdates.ingest.stopping import pause


async def test_a_stop_already_requested_ends_the_wait_at_once():
    stopping = asyncio.Event()
    stopping.set()
    await asyncio.wait_for(pause(stopping, 3600), timeout=5)


async def test_a_stop_requested_meanwhile_ends_the_wait():
    stopping = asyncio.Event()
    waiting = asyncio.ensure_future(pause(stopping, 3600))
    await asyncio.sleep(0)  # let it start waiting
    assert not waiting.done()
    stopping.set()
    await asyncio.wait_for(waiting, timeout=5)


async def test_without_a_stop_the_wait_ends_after_its_time():
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pause(stopping, 0.05)
    assert loop.time() - started >= 0.05
    assert not stopping.is_set()
