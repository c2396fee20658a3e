"""A lease holder frozen past its TTL, then resumed: no update twice.

Known failures (a randomized fault run found them), made deterministic with
real Redis, Daphne and ``run_bridge`` processes, 100 updates/s PUBLISHed
throughout and one WebSocket client:

- The active bridge is frozen (SIGSTOP) longer than the lease TTL; the standby
  takes over and forwards; on SIGCONT the old holder, still believing it is
  active until its next renewal, records again what it held in its socket:
  duplicates with new positions.
- After that, a plain SIGTERM handover (the new active bridge stops, the resumed
  one takes over) cannot align its ring with a history holding those
  duplicates, and re-forwards its whole ring: the duplicates cascade.

The client must receive every update Redis accepted exactly once, in publish
order, with strictly increasing positions, and no ``reset``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from botrix_site.redis_server import RedisServer
from harness.clients import login, welcomed, ws_connect
from harness.processes import Process, start_bridge
from tests.conftest import STAFF, Stack, _stack
from tests.support.bridge_faults import (
    ACTIVE,
    DEMOTED,
    GAP,
    STANDBY,
    TAKEOVER,
    Steady,
    Worker,
    freeze,
    logged,
    thaw,
)
from tests.support.inbox import Inbox, Key, exactly_once, verdict

pytestmark = pytest.mark.e2e

TTL = 2
"""The lease TTL (s): the freeze outlasts it."""
RATE = 100
"""Updates PUBLISHed per second throughout."""


@pytest.fixture
def short_lease_stack(redis_server: RedisServer, e2e_database: str) -> Iterator[Stack]:
    yield from _stack(redis_server, e2e_database, "fast", JOBUPDATES_BRIDGE_LEASE_TTL=str(TTL))


@dataclass
class Frozen:
    """What the frozen-holder sequence saw."""

    takeover: str
    frozen_for: float
    demoted: str
    published_at_thaw: int


async def later(inbox: Inbox, worker: Worker, count: int, timeout: float = 15.0) -> bool:
    """Wait until the client received an update published ``count`` after now (if Redis
    accepts it)."""
    target = worker.next + count
    return await inbox.until(lambda: any(key[1] >= target for key in inbox.keys[-50:]), timeout)


async def freeze_the_holder_past_its_ttl(
    holder: Process, standby: Process, inbox: Inbox, worker: Worker
) -> Frozen:
    """SIGSTOP the holder until the standby took over and forwards, past the TTL, then
    SIGCONT it and wait for a second more of updates at the client."""
    mark = standby.mark()
    frozen_at = await asyncio.to_thread(freeze, holder)
    await asyncio.to_thread(standby.wait_for, ACTIVE, after=mark, timeout=TTL + 10)
    took_over = mark
    assert await later(inbox, worker, RATE // 2), "expected the standby to forward"
    while time.monotonic() - frozen_at <= TTL:  # frozen past the TTL, however soon it expired
        assert await later(inbox, worker, RATE // 10), "expected the standby to forward"
    mark = holder.mark()
    published_at_thaw = worker.next
    frozen_for = thaw(holder) - frozen_at
    # A second of updates: the resumed holder has tried to renew its lease (every TTL/3).
    assert await later(inbox, worker, RATE), "expected updates to flow after the thaw"
    return Frozen(
        logged(standby, TAKEOVER, took_over),
        frozen_for,
        logged(holder, DEMOTED, mark),
        published_at_thaw,
    )


async def finish(steady: Steady, worker: Worker, inbox: Inbox) -> None:
    """Stop publishing; wait for the last accepted update, then for a pong."""
    await asyncio.to_thread(steady.finish)
    await inbox.until_received(worker.last(), 20)
    await inbox.settle()
    await inbox.stop()


def copies_after(inbox: Inbox, first: int) -> dict[Key, int]:
    """Updates received more than once whose later copies came at index >= ``first``."""
    seen: dict[Key, int] = {}
    late: dict[Key, int] = {}
    for index, got in enumerate(inbox.updates):
        seen[got.key] = seen.get(got.key, 0) + 1
        if seen[got.key] > 1 and index >= first:
            late[got.key] = seen[got.key]
    return late


async def test_a_holder_frozen_past_its_ttl_records_nothing_twice(short_lease_stack: Stack):
    stack = short_lease_stack
    cookie = login(stack.port, *STAFF)
    holder = stack.bridge
    standby = start_bridge(stack.env, active=False)
    standby.wait_for(STANDBY)
    worker = Worker(stack.redis.url)
    steady = Steady(worker, RATE)
    try:
        async with ws_connect(stack.port, cookie) as ws:
            await welcomed(ws)
            inbox = Inbox(ws).start()
            steady.start()
            assert await later(inbox, worker, RATE // 2), "expected the holder to forward"
            frozen = await freeze_the_holder_past_its_ttl(holder, standby, inbox, worker)
            await finish(steady, worker, inbox)
    finally:
        thaw(holder)  # if the test failed while it was frozen
        steady.halt.set()
        worker.close()
        standby.stop()

    found = verdict(inbox, worker.accepted)
    print(
        f"\n{worker.next} updates at {RATE}/s, {len(worker.accepted)} accepted; holder "
        f"frozen {frozen.frozen_for:.2f}s (TTL {TTL}s); standby: {frozen.takeover!r}; "
        f"resumed holder: {frozen.demoted!r}; client: {found.summary()}"
    )
    assert frozen.frozen_for > TTL
    exactly_once(inbox, worker.accepted, "the connected client")


async def test_a_sigterm_handover_after_a_frozen_holder_forwards_nothing_twice(
    short_lease_stack: Stack,
):
    stack = short_lease_stack
    cookie = login(stack.port, *STAFF)
    holder = stack.bridge
    standby = start_bridge(stack.env, active=False)
    standby.wait_for(STANDBY)
    worker = Worker(stack.redis.url)
    steady = Steady(worker, RATE)
    try:
        async with ws_connect(stack.port, cookie) as ws:
            await welcomed(ws)
            inbox = Inbox(ws).start()
            steady.start()
            assert await later(inbox, worker, RATE // 2), "expected the holder to forward"
            frozen = await freeze_the_holder_past_its_ttl(holder, standby, inbox, worker)

            # The standby that took over stops gracefully; the resumed one takes over.
            handed_at = len(inbox.updates)
            mark = holder.mark()
            stopped = await asyncio.to_thread(standby.stop)
            await asyncio.to_thread(holder.wait_for, ACTIVE, after=mark, timeout=10)
            assert await later(inbox, worker, RATE), "expected updates to flow after the handover"
            await finish(steady, worker, inbox)
            handover, gap = logged(holder, TAKEOVER, mark), logged(holder, GAP, mark)
    finally:
        thaw(holder)  # if the test failed while it was frozen
        steady.halt.set()
        worker.close()
        standby.stop()

    found = verdict(inbox, worker.accepted)
    cascade = copies_after(inbox, handed_at)
    print(
        f"\n{worker.next} updates at {RATE}/s, {len(worker.accepted)} accepted; holder "
        f"frozen {frozen.frozen_for:.2f}s (TTL {TTL}s); standby: {frozen.takeover!r}; "
        f"SIGTERM (exit {stopped}) handed over to the resumed holder: {handover!r}, gap "
        f"warning: {gap!r}; duplicates received after the handover: "
        f"{len(cascade)}; client overall: {found.summary()}"
    )
    exactly_once(inbox, worker.accepted, "the connected client")
