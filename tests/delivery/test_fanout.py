"""Each event once, in the history's order, what was missed first: against a real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError

from jobupdates.delivery import fanout
from jobupdates.delivery.fanout import InOrder
from jobupdates.history import History
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.events import JobUpdateEvent
from jobupdates.protocol.positions import Position, with_position
from tests.ingest.conftest import make_history


@pytest.fixture
async def history(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    yield make_history(client)
    await client.aclose()


class Delivered:
    """What :class:`InOrder` handed on: ``n`` per update, the reason per reset."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, update: JobUpdateEvent, data: bytes | None) -> None:
        frame = json.loads(update.text)
        self.seen.append(frame["reason"] if update.gap else frame["data"]["n"])


async def record(history: History, *numbers: int) -> list[JobUpdateEvent]:
    """Record updates as the bridge does; return the events it would send."""
    frames = [JobUpdate("j", "queued", {"n": n}).to_frame() for n in numbers]
    appended = await history.append_many([("j", frame) for frame in frames])
    events, prev = [], appended.prev
    for frame, position in zip(frames, appended.positions, strict=True):
        events.append(JobUpdateEvent(with_position(frame, position), "j", position, 1.0, prev))
        prev = position
    return events


def in_order(history: History) -> tuple[InOrder, Delivered]:
    delivered = Delivered()
    return InOrder(delivered, lambda: history, "test"), delivered


async def test_events_in_order_are_delivered_as_they_come(history):
    ordered, delivered = in_order(history)
    await ordered.start()
    for event in await record(history, 0, 1, 2):
        assert await ordered.receive(event)
    assert (delivered.seen, ordered.duplicates, ordered.filled) == ([0, 1, 2], 0, 0)


async def test_what_was_recorded_before_delivery_started_is_not_delivered(history):
    await record(history, 0, 1)
    ordered, delivered = in_order(history)
    await ordered.start()
    [event] = await record(history, 2)
    await ordered.receive(event)
    assert delivered.seen == [2]


async def test_a_copy_of_what_was_delivered_is_dropped(history):
    ordered, delivered = in_order(history)
    await ordered.start()
    first, second = await record(history, 0, 1)
    for event in (first, second, first, second):  # a re-send, or a late copy after a fill
        await ordered.receive(event)
    assert (delivered.seen, ordered.duplicates) == ([0, 1], 2)


async def test_what_was_recorded_but_never_received_is_read_first(history):
    """A bridge recorded 1 and 2, then died before sending them; its successor's
    event names 2 as its predecessor."""
    ordered, delivered = in_order(history)
    await ordered.start()
    zero, _, _, three = await record(history, 0, 1, 2, 3)
    await ordered.receive(zero)
    await ordered.receive(three)
    assert (delivered.seen, ordered.filled) == ([0, 1, 2, 3], 2)


async def test_events_that_arrive_out_of_order_are_delivered_in_order(history):
    ordered, delivered = in_order(history)
    await ordered.start()
    first, second = await record(history, 0, 1)
    await ordered.receive(second)  # filled: the first is read from the history
    await ordered.receive(first)  # then dropped as a copy
    assert (delivered.seen, ordered.filled, ordered.duplicates) == ([0, 1], 1, 1)


async def test_a_gap_the_history_no_longer_holds_is_a_reset_then_what_it_holds(history):
    ordered, delivered = in_order(history)
    await ordered.start()
    zero, *_ = await record(history, 0, 1, 2)
    await ordered.receive(zero)
    await history.client.xtrim(history.stream_key, maxlen=1, approximate=False)  # 0, 1 gone
    [three] = await record(history, 3)
    await ordered.receive(three)
    assert delivered.seen == [0, "gap_not_covered", 2, 3]


async def test_a_history_still_loading_is_asked_again(history, monkeypatch):
    """After a Redis restart, the data comes back a moment after the connections do."""
    ordered, delivered = in_order(history)
    await ordered.start()
    zero, *_, three = await record(history, 0, 1, 2, 3)
    await ordered.receive(zero)
    real = history.bounds
    failures = [BusyLoadingError("Redis is loading the dataset in memory")] * 2

    async def loading() -> tuple[Position | None, Position | None]:
        if failures:
            raise failures.pop()
        return await real()

    monkeypatch.setattr(history, "bounds", loading)
    await ordered.receive(three)
    assert delivered.seen == [0, 1, 2, 3]


async def test_a_history_that_cannot_be_read_is_a_reset_in_the_stream(history, monkeypatch):
    monkeypatch.setattr(fanout, "READ_PATIENCE_SECONDS", 0.2)
    ordered, delivered = in_order(history)
    await ordered.start()
    zero, _, two = await record(history, 0, 1, 2)
    await ordered.receive(zero)

    async def unreadable() -> None:
        raise BusyLoadingError("Redis is loading the dataset in memory")

    monkeypatch.setattr(history, "bounds", unreadable)
    await ordered.receive(two)
    assert delivered.seen == [0, "history_unavailable", 2]


async def test_a_subscription_back_from_a_gap_delivers_what_was_recorded_meanwhile(history):
    ordered, delivered = in_order(history)
    await ordered.start()
    zero, *_ = await record(history, 0, 1, 2)
    await ordered.receive(zero)
    await ordered.resubscribed(lost_at=0.0)
    assert (delivered.seen, ordered.filled) == ([0, 1, 2], 2)


async def test_an_event_with_no_position_is_delivered_as_is(history):
    ordered, delivered = in_order(history)
    frame = JobUpdate("j", "queued", {"n": 7}).to_frame()
    assert await ordered.receive(JobUpdateEvent(frame, "j"))
    assert await ordered.receive(JobUpdateEvent(frame, "j", "not-a-position"))
    assert delivered.seen == [7, 7]
