"""Prometheus metrics, served at ``/metrics`` (see :mod:`jobupdates.views`).

Server processes record their own series (connections, connects,
disconnects, deliveries, delivery latency, frames built per framing, registry
Redis errors, channel layer faults, slow clients dropped, the registry
heartbeat) with
prometheus-client. When several processes share a host, set
``PROMETHEUS_MULTIPROC_DIR`` to one empty directory for all of them (before
they start): each process then writes its series to files there and
``/metrics`` in any of them reports them all. The connections gauge is
``livesum``: the files of a process that died are dropped at the next scrape.

The bridge's counters come from the bridge's report in Redis
(:mod:`jobupdates.ingest.report`), so every instance reports the same
``jobupdates_bridge_*`` series: aggregate them with ``max``, not ``sum``.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from jobupdates.ingest.leadership import Role
from jobupdates.protocol.reports import BridgeReport

__all__ = [
    "CONNECTIONS",
    "CONNECTS",
    "CONTENT_TYPE_LATEST",
    "DELIVERIES",
    "DELIVERY_LATENCY",
    "DISCONNECTS",
    "FRAMES_BUILT",
    "LAYER_ERRORS",
    "REDIS_RECONNECTS",
    "REGISTRY_HEARTBEAT",
    "SLOW_CLIENT_DROPS",
    "BridgeCollector",
    "render",
]

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")

CONNECTIONS = Gauge(
    "jobupdates_connections",
    "WebSocket clients connected, per server instance.",
    ["instance"],
    multiprocess_mode="livesum",
)
CONNECTS = Counter("jobupdates_connects", "WebSocket clients accepted and registered.")
DISCONNECTS = Counter("jobupdates_disconnects", "Registered WebSocket clients that disconnected.")
DELIVERIES = Counter("jobupdates_deliveries", "Job-update frames written to WebSocket clients.")
DELIVERY_LATENCY = Histogram(
    "jobupdates_delivery_latency_seconds",
    "Seconds from the bridge's receipt of an update to its last local send, per process.",
    buckets=LATENCY_BUCKETS,
)
FRAMES_BUILT = Counter(
    "jobupdates_frames_built",
    "Job-update WebSocket frames the fast path built, by framing (json+deflate, msgpack,"
    " msgpack+deflate): one per update, process and framing in use, whatever the number"
    " of clients (jobupdates.delivery.feed.framed).",
    ["framing"],
)
UPDATES_FILLED = Counter(
    "jobupdates_updates_filled",
    "Updates a server process read from the history because it missed them live: an"
    " update named a predecessor it never received, or its subscription came back"
    " (jobupdates.delivery.fanout).",
)
DUPLICATES_DROPPED = Counter(
    "jobupdates_duplicate_updates_dropped",
    "Layer events a server process dropped because their position was not newer than"
    " the last it delivered (a copy re-sent, or one that came after its fill).",
)
REAUTH_SWEEP_SECONDS = Histogram(
    "jobupdates_reauth_sweep_seconds",
    "Seconds one re-validation sweep of a server process took (every connection judged"
    " again: jobupdates.access.revocation).",
    buckets=LATENCY_BUCKETS,
)
REVOCATIONS = Counter(
    "jobupdates_revocations",
    "Connections closed or narrowed because their authority ended or shrank, by action"
    " (close_identity: 4401, close_permission: 4403, narrow: unsubscribed).",
    ["action"],
)
REDIS_RECONNECTS = Counter(
    "jobupdates_redis_reconnects",
    "Failed Redis calls after which the component reconnects.",
    ["component"],
)
LAYER_ERRORS = Counter(
    "jobupdates_layer_errors",
    "Messages the channel layer dropped, and sinks it detached, by reason"
    " (see jobupdates.delivery.faults).",
    ["reason"],
)
SLOW_CLIENT_DROPS = Counter(
    "jobupdates_slow_client_drops",
    "WebSocket clients closed as too slow (error slow_client, close code 4408).",
)
REGISTRY_HEARTBEAT = Gauge(
    "jobupdates_registry_heartbeat_timestamp_seconds",
    "Unix time this server instance last wrote its heartbeat to the client registry"
    " (its registry's start until the first write).",
    ["instance"],
    multiprocess_mode="livemax",
)


class BridgeCollector(Collector):
    """Reports the live bridges' counters from their reports in Redis, at scrape time."""

    def __init__(self, reports: list[BridgeReport]) -> None:
        """Args:
        reports: The live bridges' reports (:func:`jobupdates.ingest.report.read_reports`).
        """
        self.reports = reports

    def collect(self) -> Iterator[Any]:
        received = CounterMetricFamily(
            "jobupdates_bridge_received", "Messages the bridge read from Redis.", labels=["bridge"]
        )
        forwarded = CounterMetricFamily(
            "jobupdates_bridge_forwarded",
            "Valid updates the bridge forwarded.",
            labels=["bridge", "status"],
        )
        rejected = CounterMetricFamily(
            "jobupdates_bridge_rejected",
            "Messages the bridge rejected.",
            labels=["bridge", "reason"],
        )
        reconnects = CounterMetricFamily(
            "jobupdates_bridge_redis_reconnects",
            "Times the bridge lost Redis and reconnected.",
            labels=["bridge"],
        )
        recovered = CounterMetricFamily(
            "jobupdates_bridge_recovered",
            "Updates the bridge forwarded from its standby ring on a takeover.",
            labels=["bridge"],
        )
        gaps = CounterMetricFamily(
            "jobupdates_bridge_gaps",
            "Takeovers whose standby ring could not cover what the old bridge may not have"
            " recorded (updates may be lost).",
            labels=["bridge"],
        )
        up = GaugeMetricFamily(
            "jobupdates_bridge_subscribed", "1 while the bridge is subscribed.", labels=["bridge"]
        )
        active = GaugeMetricFamily(
            "jobupdates_bridge_active",
            "1 while the bridge holds the lease (the active bridge), 0 as a standby.",
            labels=["bridge"],
        )
        lag = GaugeMetricFamily(
            "jobupdates_bridge_lag_seconds",
            "How long the update the bridge has in hand has waited; 0 if none.",
            labels=["bridge"],
        )
        for report in self.reports:
            bridge = report.bridge
            received.add_metric([bridge], float(report.received))
            by_status = report.forwarded_by_status or {"": report.forwarded}
            for status, count in sorted(by_status.items()):
                forwarded.add_metric([bridge, status], float(count))
            for reason, count in sorted(report.rejected.items()):
                rejected.add_metric([bridge, reason], float(count))
            reconnects.add_metric([bridge], float(report.reconnects))
            recovered.add_metric([bridge], float(report.recovered))
            gaps.add_metric([bridge], float(report.gaps))
            up.add_metric([bridge], 1.0 if report.subscribed else 0.0)
            active.add_metric([bridge], 1.0 if report.role == Role.ACTIVE else 0.0)
            lag.add_metric([bridge], report.lag_seconds)
        yield from (received, forwarded, rejected, reconnects, recovered, gaps, up, active, lag)


def _prune_dead_processes(path: str) -> None:
    """Drop the live-gauge files of processes that no longer run (killed, crashed)."""
    for name in glob.glob(os.path.join(path, "gauge_live*.db")):
        found = _LIVE_GAUGE_FILE.search(os.path.basename(name))
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's


def render(bridge_reports: list[BridgeReport]) -> bytes:
    """Return the Prometheus text exposition of every series."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _prune_dead_processes(path)
        local = CollectorRegistry()
        multiprocess.MultiProcessCollector(local, path)  # type: ignore[no-untyped-call]
    else:
        local = REGISTRY
    bridges = CollectorRegistry()
    bridges.register(BridgeCollector(bridge_reports))
    return generate_latest(local) + generate_latest(bridges)
