"""Group commit: changes that arrive during a write share the next one."""

from __future__ import annotations

import asyncio

from jobupdates.monitoring.commits import GroupCommit


class Writes:
    """A write that records how many callers were waiting when it began, and can be held."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def __call__(self) -> None:
        self.count += 1
        self.started.set()
        await self.release.wait()


async def test_callers_during_a_write_share_the_next_one():
    writes = Writes()
    writes.release.clear()
    commit = GroupCommit(writes)
    first = asyncio.ensure_future(commit())
    await writes.started.wait()
    later = [asyncio.ensure_future(commit()) for _ in range(20)]
    await asyncio.sleep(0)
    assert not any(task.done() for task in [first, *later])
    writes.release.set()
    await asyncio.gather(first, *later)
    assert writes.count == 2


async def test_a_caller_returns_only_after_a_write_that_began_after_its_call():
    gates = [asyncio.Event(), asyncio.Event()]
    began: list[int] = []

    async def write() -> None:
        began.append(len(began))
        await gates[began[-1]].wait()

    commit = GroupCommit(write)
    first = asyncio.ensure_future(commit())
    while not began:  # the first write is in flight
        await asyncio.sleep(0)
    second = asyncio.ensure_future(commit())
    await asyncio.sleep(0)
    gates[0].set()
    await asyncio.wait_for(first, 5)
    for _ in range(3):  # whatever the first write released has run by now
        await asyncio.sleep(0)
    assert began == [0, 1]
    assert not second.done(), "expected the second caller to wait for the second write"
    gates[1].set()
    await asyncio.wait_for(second, 5)


async def test_a_cancelled_caller_does_not_cancel_the_write():
    writes = Writes()
    writes.release.clear()
    commit = GroupCommit(writes)
    first = asyncio.ensure_future(commit())
    other = asyncio.ensure_future(commit())
    await writes.started.wait()
    first.cancel()
    writes.release.set()
    await other
    assert writes.count == 1


async def test_waiters_are_released_when_the_writer_is_cancelled():
    writes = Writes()
    writes.release.clear()
    commit = GroupCommit(writes)
    first = asyncio.ensure_future(commit())
    await writes.started.wait()
    second = asyncio.ensure_future(commit())
    await asyncio.sleep(0)
    assert commit._running is not None
    commit._running.cancel()  # the loop is closing
    await asyncio.wait_for(asyncio.gather(first, second), 5)
