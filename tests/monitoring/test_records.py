"""Pure parts of the client registry: addresses, snapshots, stats, delivery counters."""

from __future__ import annotations

import collections
import json
import time
from types import SimpleNamespace

import pytest

from jobupdates.ingest.report import BridgeStatsPublisher
from jobupdates.monitoring.deliveries import DeliveryCounters
from jobupdates.monitoring.records import (
    ClientRecord,
    InstanceInfo,
    activity_fragment,
    decode_activity,
    join_activity,
    merge_snapshot,
    parse_networks,
    resolve_remote_addr,
)
from jobupdates.monitoring.stats import stats_document
from jobupdates.protocol import RejectReason
from jobupdates.protocol.reports import BridgeReport, BridgeState, RecentReject

PROXIES = parse_networks(["10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("203.0.113.9", None, PROXIES, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", (), "203.0.113.9"),  # no trusted proxy: header ignored
        ("203.0.113.9", "1.2.3.4", PROXIES, "203.0.113.9"),  # forged by an untrusted peer
        ("10.0.0.5", "198.51.100.7", PROXIES, "198.51.100.7"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.7", PROXIES, "198.51.100.7"),  # forged prefix
        ("10.0.0.5", "198.51.100.7, 10.0.0.9", PROXIES, "198.51.100.7"),  # two proxies
        ("10.0.0.5", "10.0.0.8, 10.0.0.9", PROXIES, "10.0.0.8"),  # all proxies
        ("10.0.0.5", "garbage", PROXIES, "10.0.0.5"),
        ("::1", "2001:db8::1", PROXIES, "2001:db8::1"),
        ("10.0.0.5", "[2001:db8::2]:443", PROXIES, "2001:db8::2"),
        (None, "1.2.3.4", PROXIES, "unknown"),
    ],
)
def test_remote_address_believes_forwarded_for_only_from_trusted_proxies(
    peer, header, trusted, expected
):
    assert resolve_remote_addr(peer, header, trusted) == expected


def test_bad_trusted_proxy_is_named():
    with pytest.raises(ValueError, match="got 'nope'"):
        parse_networks(["10.0.0.0/8", "nope"])


def record(client_id: str, instance: str, user_id: int | None, at: float) -> ClientRecord:
    return ClientRecord(client_id, "chan", user_id, "u", "1.2.3.4", "ua", instance, at, at)


def heartbeat(instance: str) -> str:
    return InstanceInfo(instance, "h", 1, 100.0, 200.0).to_json()


def test_snapshot_keeps_only_live_instances_and_valid_records():
    snapshot = merge_snapshot(
        {"a": heartbeat("a"), "b": heartbeat("b"), "dead": None, "bad": b"{"},
        {
            "a": {
                b"c2": record("c2", "a", 1, 2).to_json(),
                b"c1": record("c1", "a", 2, 1).to_json(),
            },
            "b": {b"x": b"not json", b"c3": record("c3", "b", 1, 3).to_json()},
            "dead": {b"c4": record("c4", "dead", 3, 4).to_json()},
        },
    )
    assert [c.client_id for c in snapshot.clients] == ["c1", "c2", "c3"]
    assert snapshot.per_instance() == {"a": 2, "b": 1}
    assert snapshot.distinct_users() == 2
    assert snapshot.dead == ["bad", "dead"]


def test_activity_encoded_in_fragments_decodes_whole():
    fragments = [
        activity_fragment({"c1": (5.5, 3)}),
        activity_fragment({}),
        activity_fragment({"c2": (6.0, 0)}),
    ]
    assert decode_activity(join_activity(fragments)) == {"c1": (5.5, 3), "c2": (6.0, 0)}
    assert decode_activity(join_activity([])) == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, {}),
        (b"{", {}),
        (b"[1, 2]", {}),
        (
            b'{"ok": [1, 2], "str": ["1", 2], "bool": [1, true], "short": [1], "obj": {}}',
            {"ok": (1.0, 2)},
        ),
    ],
)
def test_bad_activity_values_are_skipped(raw, expected):
    assert decode_activity(raw) == expected


def test_activity_overrides_the_values_a_record_was_written_with():
    snapshot = merge_snapshot(
        {"a": heartbeat("a")},
        {
            "a": {
                b"c1": record("c1", "a", 1, 10.0).to_json(),
                b"c2": record("c2", "a", 1, 11.0).to_json(),
            }
        },
        {"a": join_activity([activity_fragment({"c1": (20.0, 7), "gone": (30.0, 9)})])},
    )
    by_id = {c.client_id: c for c in snapshot.clients}
    assert (by_id["c1"].last_active, by_id["c1"].messages_sent) == (20.0, 7)
    assert (by_id["c2"].last_active, by_id["c2"].messages_sent) == (11.0, 0), "not refreshed yet"
    assert set(by_id) == {"c1", "c2"}, "activity of a client without a record is ignored"


def test_record_round_trips():
    original = record("c1", "a", None, 5.0)
    original.subscriptions = ["jobupdates.all"]
    assert ClientRecord(**json.loads(original.to_json())) == original


def test_stats_document_sums_instances_and_bridges():
    snapshot = merge_snapshot(
        {"a": heartbeat("a"), "b": heartbeat("b")},
        {"a": {b"c1": record("c1", "a", 1, 1).to_json()}, "b": {}},
    )
    report = BridgeReport(
        bridge="br",
        state=BridgeState.SUBSCRIBED,
        started_at=150.0,
        reported_at=299.0,
        forwarded=3,
        forwarded_by_status={"completed": 2, "failed": 1},
        rejected={"invalid_json": 2},
        recent_rejects=(RecentReject(290.0, "invalid_json"),),
        reconnects=1,
        last_message_at=295.0,
        primary="10.0.0.2:6379",
        failovers=1,
    )
    assert BridgeReport.from_json(report.to_json()) == report
    document = stats_document(snapshot, [report], now=300.0)
    assert document["connected_clients"] == 1
    assert {k: v["connected_clients"] for k, v in document["instances"].items()} == {"a": 1, "b": 0}
    assert document["messages_bridged"] == {"total": 3, "by_status": {"completed": 2, "failed": 1}}
    assert document["rejected"]["total"] == 2
    assert document["rejected"]["recent"] == [{"at": 290.0, "reason": "invalid_json"}]
    assert document["bridge"]["connected"] is True
    assert document["bridge"]["seconds_since_last_message"] == 5.0
    assert document["uptime_seconds"] == 200.0
    assert (document["bridge"]["recovered"], document["bridge"]["gaps"]) == (0, 0)
    assert document["bridge"]["bridges"] == [
        {
            "bridge": "br",
            "state": "subscribed",
            "role": "active",
            "takeovers": 0,
            "recovered": 0,
            "gaps": 0,
            "primary": "10.0.0.2:6379",
            "failovers": 1,
            "started_at": 150.0,
            "reported_at": 299.0,
        }
    ]
    assert json.loads(json.dumps(document)) == document
    assert stats_document(snapshot, [], now=300.0)["bridge"]["connected"] is False


def test_stats_document_says_a_bridge_is_connected_only_when_one_is_subscribed():
    snapshot = merge_snapshot({}, {})
    older = BridgeReport.from_json('{"bridge":"old","state":"backing_off","reported_at":1}')
    assert older.started_at is None
    bridge = stats_document(snapshot, [older], now=300.0)["bridge"]
    assert (bridge["connected"], bridge["state"], bridge["uptime_seconds"]) == (
        False,
        "backing_off",
        None,
    )
    subscribed = BridgeReport("new", BridgeState.SUBSCRIBED, 2.0, started_at=100.0)
    bridge = stats_document(snapshot, [older, subscribed], now=300.0)["bridge"]
    assert (bridge["connected"], bridge["state"], bridge["uptime_seconds"]) == (
        True,
        "subscribed",
        200.0,
    )


def test_delivery_counters_count_deliveries_and_drain_latencies():
    counters = DeliveryCounters()
    counters.fanout(3, time.time() - 0.5)
    counters.fanout(3, None)
    counters.direct(None)
    assert counters.deliveries == 7
    latencies = counters.drain_latencies()
    assert len(latencies) == 1
    assert 0.4 < latencies[0] < 5
    assert counters.drain_latencies() == []


def test_bridge_report_derives_recent_rejects_and_lag():
    publisher = BridgeStatsPublisher(None, interval=1.0, bridge_id="br")  # type: ignore[arg-type]
    stats = SimpleNamespace(
        received=5,
        forwarded=2,
        rejected=collections.Counter({RejectReason.INVALID_JSON: 2}),
        reconnects=0,
        forwarded_by_status=collections.Counter({"completed": 2}),
        last_message_at=100.0,
    )
    first = publisher.report(stats, BridgeState.SUBSCRIBED, now=103.0)
    assert first.lag_seconds == 3.0  # 5 received, 4 outcomes: one in hand since t=100
    assert first.recent_rejects == (RecentReject(103.0, "invalid_json"),) * 2
    assert first.forwarded_by_status == {"completed": 2}
    assert (first.bridge, first.state, first.role) == ("br", "subscribed", "active")
    stats.forwarded = 3
    stats.rejected[RejectReason.TOO_LARGE] += 1
    stats.received = 6
    second = publisher.report(stats, BridgeState.SUBSCRIBED, now=104.0)
    assert second.lag_seconds == 0.0
    assert second.recent_rejects[-1] == RecentReject(104.0, "too_large")
    assert BridgeReport.from_json(second.to_json()) == second
