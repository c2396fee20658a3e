"""The bridges' series in /metrics, from their reports."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from jobupdates.monitoring.metrics import BridgeCollector
from jobupdates.protocol.reports import BridgeReport, BridgeState


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
