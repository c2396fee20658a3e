"""The series in /metrics: the bridges', from their reports, and the process's own."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from jobupdates.delivery.feed import framed
from jobupdates.monitoring import metrics
from jobupdates.monitoring.metrics import BridgeCollector
from jobupdates.protocol.reports import BridgeReport, BridgeState
from jobupdates.protocol.wire import Framing


def collected(reports: list[BridgeReport]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BridgeCollector(reports))
    return registry


def test_bridge_series_come_from_the_reports():
    active = BridgeReport(
        "a",
        BridgeState.SUBSCRIBED,
        1.0,
        received=5,
        forwarded=3,
        forwarded_by_status={"completed": 2, "failed": 1},
        rejected={"invalid_json": 2},
        reconnects=1,
        recovered=4,
        gaps=1,
    )
    older = BridgeReport.from_json('{"bridge":"b","state":"backing_off","reported_at":1}')
    registry = collected([active, older])

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("jobupdates_bridge_subscribed", bridge="a") == 1.0
    assert sample("jobupdates_bridge_subscribed", bridge="b") == 0.0
    assert sample("jobupdates_bridge_received_total", bridge="a") == 5.0
    assert sample("jobupdates_bridge_forwarded_total", bridge="a", status="failed") == 1.0
    assert sample("jobupdates_bridge_forwarded_total", bridge="b", status="") == 0.0
    assert sample("jobupdates_bridge_rejected_total", bridge="a", reason="invalid_json") == 2.0
    assert sample("jobupdates_bridge_redis_reconnects_total", bridge="b") == 0.0
    assert sample("jobupdates_bridge_recovered_total", bridge="a") == 4.0
    assert sample("jobupdates_bridge_gaps_total", bridge="a") == 1.0
    assert sample("jobupdates_bridge_gaps_total", bridge="b") == 0.0, "an older report: 0"


def frames_built_series() -> dict[str, float]:
    """``jobupdates_frames_built_total`` per framing, as ``/metrics`` serves it."""
    return {
        sample.labels["framing"]: sample.value
        for family in text_string_to_metric_families(metrics.render([]).decode())
        if family.name == "jobupdates_frames_built"
        for sample in family.samples
        if sample.name == "jobupdates_frames_built_total"
    }


def test_frames_built_are_served_per_framing_and_count_each_build_once(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.delenv(metrics.MULTIPROC_ENV, raising=False)
    before = frames_built_series()
    assert set(before) >= {"json+deflate", "msgpack", "msgpack+deflate"}, "expected them at 0 too"
    message = {"text": '{"type":"job_update","job_id":"j","status":"queued","data":null}'}
    deflated = framed(message, Framing(compressed=True))
    assert framed(message, Framing(compressed=True)) is deflated, "expected the kept frame"
    framed(message, Framing(binary=True))
    after = frames_built_series()
    assert after["json+deflate"] - before["json+deflate"] == 1
    assert after["msgpack"] - before["msgpack"] == 1
    assert after["msgpack+deflate"] == before["msgpack+deflate"]
