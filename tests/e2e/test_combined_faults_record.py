"""A bridge that dies between recording a batch and sending it: connected clients still
get the batch, once.

A known failure (a randomized fault run found it): the active bridge records a
batch in the history, then dies before its ``group_send``. The standby takes
over, finds the batch's digests in the history and forwards only what follows,
so clients that stay connected never get the batch (only a reconnect with
``since=`` would). Made deterministic with a fault planted by the test harness
(:mod:`tests.support.bridge_hooks`): the active bridge SIGKILLs itself right
after the history recorded the batch holding the marked update. Real Redis,
Daphne, a plain standby ``run_bridge`` and a WebSocket client that never
reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from botrix_site.redis_server import RedisServer
from harness.clients import login, welcomed, ws_connect
from harness.processes import start_bridge
from tests.conftest import STAFF
from tests.support.bridge_faults import (
    ACTIVE,
    STANDBY,
    TAKEOVER,
    Daphne,
    Worker,
    daphne_only,
    logged,
    start_hooked_bridge,
)
from tests.support.bridge_hooks import DYING, MARK
from tests.support.inbox import Inbox, exactly_once, verdict

pytestmark = pytest.mark.e2e

TTL = 2
"""The lease TTL (s): how long the standby waits for the dead bridge's lease."""
BEFORE, AFTER = 10, 10
"""Updates published before the marked one, and after it (the standby alone hears them)."""


@pytest.fixture
def no_bridge(redis_server: RedisServer, e2e_database: str) -> Iterator[Daphne]:
    with daphne_only(redis_server, e2e_database, JOBUPDATES_BRIDGE_LEASE_TTL=str(TTL)) as stack:
        yield stack


async def test_a_batch_recorded_but_never_sent_still_reaches_connected_clients(
    no_bridge: Daphne,
):
    stack = no_bridge
    cookie = login(stack.port, *STAFF)
    hooked = start_hooked_bridge(stack.env, active=True)
    standby = start_bridge(stack.env, active=False)
    worker = Worker(stack.redis.url, "record")
    try:
        standby.wait_for(STANDBY)
        async with ws_connect(stack.port, cookie) as ws:
            await welcomed(ws)
            inbox = Inbox(ws).start()
            before = worker.publish(BEFORE)
            assert set(before) == {2}, "expected both bridges subscribed"
            assert await inbox.until_received(worker.last(), 10)

            mark = standby.mark()
            marked = worker.publish(1, job_id=MARK)
            marked_key = worker.accepted[-1]
            await asyncio.to_thread(hooked.wait_for, DYING)
            exit_code = await asyncio.to_thread(hooked.popen.wait, 10)
            after = worker.publish(AFTER)  # the standby alone hears these
            await asyncio.to_thread(standby.wait_for, ACTIVE, after=mark, timeout=TTL + 10)
            await inbox.until_received(worker.last(), 20)
            await inbox.settle()
            await inbox.stop()
            takeover = logged(standby, TAKEOVER, mark)
    finally:
        worker.close()
        standby.stop()
        hooked.stop()

    found = verdict(inbox, worker.accepted)
    print(
        f"\nreceivers: {BEFORE} before {sorted(set(before))}, the marked one {marked}, "
        f"{AFTER} after {sorted(set(after))}; the hooked bridge exited {exit_code} after "
        f"recording {marked_key}; standby: {takeover!r}; client: {found.summary()}"
    )
    assert exit_code == -9, "expected the hooked bridge SIGKILLed by its hook"
    assert marked == [2], "expected both bridges to hear the marked update"
    exactly_once(inbox, worker.accepted, "the connected client (never reconnected)")
