"""The bridge's report in a real throwaway Redis: written by the publisher, read by /ws/stats."""

from __future__ import annotations

import collections
import json
import logging
from types import SimpleNamespace

import redis
import redis.asyncio as aioredis

from jobupdates.ingest.leadership import Role
from jobupdates.ingest.report import BRIDGES_KEY, BridgeStatsPublisher, bridge_key, read_reports
from jobupdates.protocol.reports import BridgeReport, BridgeState


def stats() -> SimpleNamespace:
    return SimpleNamespace(
        received=2,
        forwarded=2,
        rejected=collections.Counter(),
        reconnects=0,
        forwarded_by_status=collections.Counter({"completed": 2}),
        last_message_at=None,
    )


async def test_what_the_publisher_writes_the_readers_read(redis_server):
    writer = aioredis.Redis.from_url(redis_server.url)
    publisher = BridgeStatsPublisher(writer, interval=5.0, bridge_id="host:1:aaaaaa")
    await publisher.publish(stats(), BridgeState.SUBSCRIBED, Role.STANDBY, takeovers=1)
    await writer.aclose()
    with redis.Redis.from_url(redis_server.url) as client:
        [report] = read_reports(client)
    assert report.bridge == "host:1:aaaaaa"
    assert report.subscribed
    assert (report.role, report.takeovers, report.forwarded) == ("standby", 1, 2)


def test_reports_from_other_versions_are_read_and_garbage_is_pruned(redis_server, caplog):
    older = {"bridge": "old", "state": "subscribed", "reported_at": 1.0, "received": 4}
    newer = {"bridge": "new", "state": "draining", "reported_at": 2.0, "shards": 3}
    with redis.Redis.from_url(redis_server.url) as client:
        for bridge, document in [("old", json.dumps(older)), ("new", json.dumps(newer))]:
            client.set(bridge_key(bridge), document)
        client.set(bridge_key("bad"), '{"bridge": "bad", "state": 5, "reported_at": 1}')
        client.sadd(BRIDGES_KEY, "old", "new", "bad", "expired")
        with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.report"):
            reports = read_reports(client)
        assert reports == [
            BridgeReport("new", "draining", 2.0),
            BridgeReport("old", BridgeState.SUBSCRIBED, 1.0, received=4),
        ]
        assert client.smembers(BRIDGES_KEY) == {b"old", b"new"}
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (
        "ignoring the report of bridge 'bad':"
        " expected 'state' of a bridge report to be a str, got 5"
    )
