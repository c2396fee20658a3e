"""The fast-path channel layer, in-process against a real throwaway Redis."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client import REGISTRY

from jobupdates.delivery.layers import SINK_FAILED_EVENT, JobUpdatesChannelLayer
from jobupdates.protocol import JOB_UPDATE_EVENT
from tests.support.channel_layer import Recorder

GROUP = "jobupdates.all"


@pytest.fixture
async def layer(redis_server):
    instance = JobUpdatesChannelLayer(hosts=[{"address": redis_server.url, "socket_timeout": 30}])
    yield instance
    await instance.flush()


def update(seq: int) -> dict:
    return {"type": JOB_UPDATE_EVENT, "text": json.dumps({"seq": seq})}


def errors(reason: str) -> float:
    """This process's jobupdates_layer_errors_total for ``reason``."""
    return REGISTRY.get_sample_value("jobupdates_layer_errors_total", {"reason": reason}) or 0.0


def dropped_lines(caplog, reason: str) -> int:
    prefix = f"channel layer dropped a message: {reason}: "
    return sum(r.getMessage().startswith(prefix) for r in caplog.records)


async def still_delivering(layer, sink: Recorder, seq: int) -> None:
    """A valid update still reaches ``sink``, and a direct channel message still arrives."""
    await layer.group_send(GROUP, update(seq))
    await sink.wait_for(len(sink.texts) + 1)
    assert sink.seqs()[-1] == seq
    direct = await layer.new_channel()
    await layer.send(direct, {"type": "direct.message"})
    assert await asyncio.wait_for(layer.receive(direct), 5) == {"type": "direct.message"}


async def member(layer, sink=None) -> str:
    channel = await layer.new_channel()
    if sink is not None:
        layer.attach(channel, sink)
    await layer.group_add(GROUP, channel)
    return channel


async def test_attached_sinks_get_the_prebuilt_frame_and_nothing_is_queued(layer):
    sinks = [Recorder(), Recorder()]
    channels = [await member(layer, sink) for sink in sinks]
    await layer.group_send(GROUP, update(1))
    for sink in sinks:
        await sink.wait_for(1)
        assert sink.texts == ['{"seq": 1}']
    loop_layer = layer._get_layer()
    assert all(loop_layer.channels[c].empty() for c in channels)


async def test_members_without_a_sink_and_other_events_use_the_ordinary_path(layer):
    sink = Recorder()
    fast = await member(layer, sink)
    plain = await member(layer)
    await layer.group_send(GROUP, update(1))
    assert await asyncio.wait_for(layer.receive(plain), 5) == update(1)
    await sink.wait_for(1)
    await layer.group_send(GROUP, {"type": "other.event", "n": 2})
    assert await asyncio.wait_for(layer.receive(fast), 5) == {"type": "other.event", "n": 2}
    assert await asyncio.wait_for(layer.receive(plain), 5) == {"type": "other.event", "n": 2}
    assert sink.texts == ['{"seq": 1}']


async def test_detach_returns_a_member_to_the_ordinary_path(layer):
    sink = Recorder()
    channel = await member(layer, sink)
    layer.detach(channel)
    await layer.group_send(GROUP, update(5))
    assert await asyncio.wait_for(layer.receive(channel), 5) == update(5)
    assert sink.texts == []


async def test_group_discard_stops_delivery(layer):
    kept, dropped = Recorder(), Recorder()
    await member(layer, kept)
    gone = await member(layer, dropped)
    await layer.group_discard(GROUP, gone)
    await layer.group_send(GROUP, update(1))
    await kept.wait_for(1)
    await layer.group_send(GROUP, update(2))
    await kept.wait_for(2)
    assert dropped.texts == []


async def test_a_failing_sink_is_detached_and_its_consumer_asked_to_close(layer, caplog):
    async def broken(message):
        raise ConnectionResetError("peer went away")

    good = Recorder()
    bad_channel = await member(layer, broken)
    await member(layer, good)
    before = errors("sink_failed")
    with caplog.at_level(logging.WARNING, logger="jobupdates.delivery.layers"):
        await layer.group_send(GROUP, update(1))
        await good.wait_for(1)
    assert layer._get_layer().sinks.get(bad_channel) is None
    closing = await asyncio.wait_for(layer.receive(bad_channel), 5)
    assert closing == {
        "type": SINK_FAILED_EVENT,
        "reason": "its direct send raised ConnectionResetError",
    }
    assert dropped_lines(caplog, "sink_failed") == 1
    assert errors("sink_failed") == before + 1
    await still_delivering(layer, good, 2)
    assert await asyncio.wait_for(layer.receive(bad_channel), 5) == update(2)  # ordinary path


async def test_a_malformed_job_update_is_dropped_with_its_reason(layer, caplog):
    sink = Recorder()
    plain = await member(layer)
    await member(layer, sink)
    before = errors("malformed_event")
    with caplog.at_level(logging.WARNING, logger="jobupdates.delivery.layers"):
        await layer.group_send(GROUP, {"type": JOB_UPDATE_EVENT})  # no text
        await layer.group_send(GROUP, {"type": JOB_UPDATE_EVENT, "text": "{}", "position": 7})
        await layer.group_send(GROUP, {"n": 1})  # no type: no consumer could dispatch it
        await still_delivering(layer, sink, 1)
    assert dropped_lines(caplog, "malformed_event") == 3
    assert errors("malformed_event") == before + 3
    text = [r.getMessage() for r in caplog.records if "'text'" in r.getMessage()]
    assert "expected a 'job.update' event with a str 'text', got keys ['type']" in text[0]
    assert await asyncio.wait_for(layer.receive(plain), 5) == update(1)  # dropped for all


async def test_bytes_that_do_not_decode_are_dropped_with_their_reason(layer, redis_server, caplog):
    import redis.asyncio as aioredis

    sink = Recorder()
    plain = await member(layer)
    await member(layer, sink)
    before = errors("undecodable")
    client = aioredis.Redis.from_url(redis_server.url)
    with caplog.at_level(logging.WARNING, logger="jobupdates.delivery.layers"):
        assert await client.publish(f"asgi__group__{GROUP}", b"\xc1 not msgpack") == 1
        await still_delivering(layer, sink, 1)
    await client.aclose()
    assert dropped_lines(caplog, "undecodable") == 1
    assert errors("undecodable") == before + 1
    assert await asyncio.wait_for(layer.receive(plain), 5) == update(1)  # not the garbage


async def test_any_other_error_is_logged_with_its_traceback_and_the_loop_goes_on(
    layer, monkeypatch, caplog
):
    class Broken:
        def fanout(self, delivered, received_at):
            monkeypatch.undo()  # once
            raise RuntimeError("a bug")

    monkeypatch.setattr("jobupdates.delivery.fanout.counters", Broken())
    sink = Recorder()
    await member(layer, sink)
    before = errors("unexpected")
    with caplog.at_level(logging.WARNING, logger="jobupdates.delivery.layers"):
        await layer.group_send(GROUP, update(1))
        await sink.wait_for(1)
        await still_delivering(layer, sink, 2)
    [line] = [r for r in caplog.records if r.getMessage().startswith("channel layer dropped")]
    assert "unexpected: routing failed: RuntimeError('a bug')" in line.getMessage()
    assert line.exc_info is not None
    assert errors("unexpected") == before + 1


def test_job_update_send_is_built_from_the_parsed_event():
    from jobupdates.delivery.layers import MalformedEvent, job_update_send
    from jobupdates.protocol import events
    from jobupdates.protocol.wire import text_frame

    assert MalformedEvent is events.MalformedEvent  # the old import path still works
    update = events.JobUpdateEvent("é", "j", "1-0", 5.0)
    assert job_update_send(update) == {
        "type": "websocket.send",
        "text": "é",
        "job_id": "j",
        "position": "1-0",
        "gap": False,
        "frame": text_frame("é".encode()),
    }


def test_fault_lines_are_throttled_per_reason_and_summed_up():
    from jobupdates.delivery.faults import Fault, LayerFaults

    now = [0.0]
    lines: list[str] = []

    class Log:
        def warning(self, message, *args, exc_info=None):
            lines.append(message % args)

    faults = LayerFaults(Log(), clock=lambda: now[0], burst=2, rate=0.1, summary_seconds=5)
    before = errors("undecodable")
    for _ in range(10):
        faults.record(Fault.UNDECODABLE, "bytes")
    faults.record(Fault.SINK_FAILED, "raised")  # another reason has its own budget
    assert len(lines) == 3
    assert errors("undecodable") == before + 10
    now[0] = 4.9
    faults.summarize()
    assert len(lines) == 3
    assert faults.pending
    now[0] = 5.0
    faults.summarize()
    assert lines[-1].startswith("channel layer: 8 more undecodable fault(s) in the last 5.0s")
    assert not faults.pending
    faults.summarize()
    assert len(lines) == 4


async def test_membership_changes_while_updates_are_in_flight(layer):
    """Members that come and go mid-stream get an in-order, duplicate-free subsequence."""
    steady = [Recorder() for _ in range(20)]
    for sink in steady:
        await member(layer, sink)
    churners = [Recorder() for _ in range(10)]
    churn_channels = [await layer.new_channel() for _ in churners]
    for channel, sink in zip(churn_channels, churners, strict=True):
        layer.attach(channel, sink)
    total = 300

    async def churn() -> None:
        for i in range(total):
            channel = churn_channels[i % len(churn_channels)]
            if i % 3:
                await layer.group_add(GROUP, channel)
            else:
                await layer.group_discard(GROUP, channel)
            await asyncio.sleep(0)

    async def send() -> None:
        for seq in range(total):
            await layer.group_send(GROUP, update(seq))

    await asyncio.gather(churn(), send())
    for sink in steady:
        await sink.wait_for(total)
        assert sink.seqs() == list(range(total))
    for sink in churners:
        seqs = sink.seqs()
        assert seqs == sorted(set(seqs)), "expected in order and without duplicates"
    assert sum(len(s.texts) for s in churners) > 0, "expected the churners to get some updates"


async def test_a_sink_whose_consumer_is_gone_is_dropped(layer):
    sink = Recorder()
    channel = await member(layer, sink)
    loop_layer = layer._get_layer()
    del loop_layer.channels[channel]  # what channels_redis does when the consumer exits
    witness = Recorder()
    await member(layer, witness)
    await layer.group_send(GROUP, update(1))
    await witness.wait_for(1)
    assert sink.texts == []
    assert channel not in loop_layer.sinks


async def test_group_send_many_delivers_every_message_in_order(layer):
    sink = Recorder()
    plain_sink_less = await member(layer)
    await member(layer, sink)
    await layer.group_send_many(GROUP, [update(seq) for seq in range(50)])
    await sink.wait_for(50)
    assert sink.seqs() == list(range(50))
    received = [await asyncio.wait_for(layer.receive(plain_sink_less), 5) for _ in range(50)]
    assert received == [update(seq) for seq in range(50)]


async def test_joining_a_subscribed_group_waits_only_for_an_unsubscribe_under_way(layer):
    sink = Recorder()
    first = await member(layer, sink)
    [shard] = layer._get_layer()._shards
    await shard._lock.acquire()  # an unsubscribe (or subscribe) is under way
    joining = asyncio.ensure_future(member(layer, Recorder()))
    await asyncio.sleep(0.05)
    assert not joining.done(), "expected the join to wait for the lock"
    shard._lock.release()
    second = await asyncio.wait_for(joining, 5)
    assert not shard._lock.locked()
    await layer.new_mailbox(lambda message: None)  # the process's pattern, subscribed once
    taken: list[int] = []
    acquire = shard._lock.acquire

    async def counted() -> bool:
        taken.append(1)
        return await acquire()

    shard._lock.acquire = counted  # type: ignore[method-assign]
    joined = [await layer.new_mailbox(lambda message: None) for _ in range(3)]
    for channel in joined:  # as the consumer joins: a mailbox (psubscribed once), then the group
        await layer.group_add(GROUP, channel)
    assert taken == [], "expected no lock taken to join a subscribed group"
    await layer.group_discard(GROUP, first)
    for channel in [second, *joined]:
        await layer.group_discard(GROUP, channel)
    await member(layer, sink)  # the group emptied and was unsubscribed: subscribed again
    await still_delivering(layer, sink, 1)
