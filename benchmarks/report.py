"""Medians over rounds, ratios against the baseline, the goals, and the printed table.

Three kinds of ratio: every target against the ``websockets`` baseline (ratio
of the medians); each variant of the project (:data:`benchmarks.targets.VARIANTS`:
its clients offer permessage-deflate or msgpack) against ``project`` (whose
clients offer neither), paired by round: the median of the per-round ratios;
and each variant's CPU and bytes per delivery against plain clients on the
same server, seconds apart (A/B/A, :func:`benchmarks.cli.same_server_reference`):
the median over rounds. The compression goal is judged on the last, which the
load of a shared machine moves least.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import sweep_report
from benchmarks.targets import BASELINE, VARIANT_BASE, VARIANTS

IDLE_GOAL_CONNECTIONS = 10_000


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _get(run: dict[str, Any], *keys: str) -> Any:
    value: Any = run
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


METRICS: dict[str, tuple[str, ...]] = {
    "server_cpu_us_per_delivery": ("throughput", "server_cpu_us_per_delivery"),
    "redis_cpu_us_per_delivery": ("throughput", "redis_cpu_us_per_delivery"),
    "wire_bytes_per_delivery": ("throughput", "wire_bytes_per_delivery"),
    "payload_bytes_per_delivery": ("throughput", "payload_bytes_per_delivery"),
    "message_bytes": ("throughput", "message_bytes"),
    "same_server_cpu_ratio": ("same_server", "cpu_ratio"),
    "same_server_wire_ratio": ("same_server", "wire_ratio"),
    "deliveries_per_second": ("throughput", "deliveries_per_second"),
    "idle_bytes_per_connection": ("connect", "idle_bytes_per_connection"),
    "connect_seconds": ("connect", "seconds"),
    "delivery_latency_p50_us": ("latency", "delivery_latency_us", "p50"),
    "delivery_latency_p99_us": ("latency", "delivery_latency_us", "p99"),
    "all_delivered_p50_us": ("latency", "all_delivered_latency_us", "p50"),
    "all_delivered_p99_us": ("latency", "all_delivered_latency_us", "p99"),
    "ingest_forwarded_per_second": ("ingest", "forwarded_per_second"),
    "ingest_bridge_cpu_bound_per_second": ("ingest", "bridge_cpu_bound_per_second"),
    "ingest_xadd_forwarded_per_second": ("ingest_durable", "forwarded_per_second"),
    "ingest_xadd_bridge_cpu_bound_per_second": ("ingest_durable", "bridge_cpu_bound_per_second"),
    "registry_share": ("profile", "shares", "registry"),
    "metrics_share": ("profile", "shares", "metrics"),
    "storm_handshakes_per_second": ("storm", "handshakes_per_second"),
    "storm_seconds": ("storm", "seconds_until_all_welcomed"),
    "storm_server_cpu_us_per_handshake": ("storm", "server_cpu_us_per_handshake"),
    "storm_welcomed_first_attempt": ("storm", "welcomed_first_attempt"),
    "storm_refused_busy": ("storm", "refused_busy"),
    "storm_retries": ("storm", "retries"),
}
RATIOS = (
    "server_cpu_us_per_delivery",
    "idle_bytes_per_connection",
    "all_delivered_p99_us",
    "storm_seconds",
)
VARIANT_RATIOS = (
    "server_cpu_us_per_delivery",
    "wire_bytes_per_delivery",
    "idle_bytes_per_connection",
    "all_delivered_p99_us",
)
COMPRESSION_GOAL = 1.2
"""permessage-deflate may cost at most this times the CPU per delivery of uncompressed."""


def summarize(runs: list[dict[str, Any]], connections: int) -> dict[str, Any]:
    """Return per-target medians, exact loss counts, flags, ratios and the goals."""
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(run["target"] for run in runs):
        mine = [run for run in runs if run["target"] == name]
        entry: dict[str, Any] = {
            metric: _median([_get(run, *path) for run in mine]) for metric, path in METRICS.items()
        }
        phases = [run[p] for run in mine for p in ("throughput", "latency") if p in run]
        phases += [
            block["throughput"]
            for run in mine
            for block in (_get(run, "same_server", "blocks") or {}).values()
        ]
        entry["expected"] = sum(p["expected"] for p in phases)
        entry["delivered"] = sum(p["delivered"] for p in phases)
        entry["lost"] = sum(p["lost"] for p in phases)
        entry["duplicates"] = sum(p["duplicates"] for p in phases)
        storms = [run["storm"] for run in mine if "storm" in run]
        entry["storm_failed"] = sum(s["failed"] for s in storms)
        entry["storm_clients"] = sum(s["clients"] for s in storms)
        entry["rounds"] = len(mine)
        entry["negotiated"] = _negotiated(mine)
        entry["flags"] = sorted(
            {f"round {run['round']}: {flag}" for run in mine for flag in run["flags"]}
        )
        summary[name] = entry
    base = summary.get(BASELINE, {})
    for entry in summary.values():
        entry["vs_websockets"] = {
            metric: (entry[metric] / base[metric])
            if entry.get(metric) is not None and base.get(metric)
            else None
            for metric in RATIOS
        }
        entry["vs_project"] = dict.fromkeys(VARIANT_RATIOS)
    base_runs = {run["round"]: run for run in runs if run["target"] == VARIANT_BASE}
    for name, entry in summary.items():
        if name in VARIANTS:
            mine = [run for run in runs if run["target"] == name]
            entry["vs_project"] = {
                metric: _paired_ratio(mine, base_runs, METRICS[metric]) for metric in VARIANT_RATIOS
            }
    sweep = sweep_report.summarize(runs)  # [16]: project and project-nosweep
    goals = _goals(summary, connections) + sweep_report.goals(sweep)
    return {"targets": summary, "goals": goals, "sweep": sweep}


def _paired_ratio(
    runs: list[dict[str, Any]], base: dict[int, dict[str, Any]], path: tuple[str, ...]
) -> float | None:
    """The median over rounds of ``runs``' value at ``path`` / the same round's base value."""
    ratios = []
    for run in runs:
        mine, theirs = _get(run, *path), _get(base.get(run["round"], {}), *path)
        ratios.append(mine / theirs if mine is not None and theirs else None)
    return _median(ratios)


def _negotiated(runs: list[dict[str, Any]]) -> str:
    """What the connections of ``runs`` negotiated, e.g. ``deflate (no context takeover)``."""
    labels: dict[str, int] = {}
    for run in runs:
        for label, count in (_get(run, "connect", "negotiated") or {}).items():
            labels[label] = labels.get(label, 0) + count
    return ", ".join(sorted(labels, key=lambda label: -labels[label])) or "-"


def _goals(summary: dict[str, Any], connections: int) -> list[dict[str, Any]]:
    project = summary.get("project", {})
    ratios = project.get("vs_websockets", {})
    stock_cpu = summary.get("stock", {}).get("server_cpu_us_per_delivery")
    cpu = project.get("server_cpu_us_per_delivery")
    idle = project.get("idle_bytes_per_connection")
    ingest = project.get("ingest_forwarded_per_second") or None

    def goal(name: str, measured: float | None, limit: str, met: bool | None) -> dict[str, Any]:
        return {"goal": name, "measured": measured, "limit": limit, "met": met}

    def check(value: float | None, ok: bool) -> bool | None:
        return None if value is None else ok

    cpu_ratio = ratios.get("server_cpu_us_per_delivery")
    deflate = summary.get("project-deflate", {})
    deflate_ratio = deflate.get("same_server_cpu_ratio")
    deflated = "deflate" in deflate.get("negotiated", "").split(",")[0]
    p99_ratio = ratios.get("all_delivered_p99_us")
    storm_ratio = ratios.get("storm_seconds")
    stock_ratio = stock_cpu / cpu if stock_cpu and cpu else None
    idle_scale = connections >= IDLE_GOAL_CONNECTIONS
    return [
        goal(
            "CPU/delivery vs websockets",
            cpu_ratio,
            "<= 1.5x",
            check(cpu_ratio, (cpu_ratio or 0) <= 1.5),
        ),
        goal(
            "CPU/delivery, stock / project",
            stock_ratio,
            ">= 20x",
            check(stock_ratio, (stock_ratio or 0) >= 20),
        ),
        goal(
            f"idle KB/connection ({connections} conns)",
            idle / 1024 if idle else None,
            "<= 30 KB at 10,000",
            check(idle, idle_scale and (idle or 0) <= 30 * 1024) if idle_scale else None,
        ),
        goal(
            "p99 all delivered vs websockets",
            p99_ratio,
            "<= 2x",
            check(p99_ratio, (p99_ratio or 0) <= 2),
        ),
        goal(
            "lost deliveries",
            project.get("lost"),
            "0",
            check(project.get("lost"), project.get("lost") == 0),
        ),
        goal("bridge ingest msg/s", ingest, ">= 10,000", check(ingest, (ingest or 0) >= 10_000)),
        goal(
            "permessage-deflate CPU/delivery vs uncompressed (same server)",
            deflate_ratio,
            f"<= {COMPRESSION_GOAL}x",
            check(deflate_ratio, (deflate_ratio or 0) <= COMPRESSION_GOAL) if deflated else None,
        ),
        goal(
            "connect storm vs websockets",
            storm_ratio,
            "<= 3x",
            False if project.get("storm_failed") else check(storm_ratio, (storm_ratio or 0) <= 3),
        ),
    ]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(results: dict[str, Any]) -> str:
    """Render the summary as a plain-text table (also valid Markdown)."""
    targets = results["summary"]["targets"]
    names = list(targets)
    w, p = "websockets", "project"  # the ratio rows: against which
    rows: list[tuple[str, str, int, str | None]] = [
        ("negotiated", "negotiated", 0, None),
        ("server CPU us/delivery", "server_cpu_us_per_delivery", 1, None),
        ("  x websockets", "server_cpu_us_per_delivery", 2, w),
        ("  x project (paired by round)", "server_cpu_us_per_delivery", 2, p),
        ("  x plain clients, same server (A/B/A)", "same_server_cpu_ratio", 2, None),
        ("redis CPU us/delivery", "redis_cpu_us_per_delivery", 2, None),
        ("deliveries/s (throughput phase)", "deliveries_per_second", 0, None),
        ("wire bytes/delivery (TCP payload, client side)", "wire_bytes_per_delivery", 1, None),
        ("  x plain clients, same server", "same_server_wire_ratio", 2, None),
        ("WebSocket payload bytes/delivery", "payload_bytes_per_delivery", 1, None),
        ("message bytes, uncompressed", "message_bytes", 1, None),
        ("idle KB/connection", "idle_bytes_per_connection", 1, None),
        ("  x websockets", "idle_bytes_per_connection", 2, w),
        ("  x project (paired by round)", "idle_bytes_per_connection", 2, p),
        ("delivery latency p50 ms", "delivery_latency_p50_us", 2, None),
        ("delivery latency p99 ms", "delivery_latency_p99_us", 2, None),
        ("all delivered p50 ms", "all_delivered_p50_us", 2, None),
        ("all delivered p99 ms", "all_delivered_p99_us", 2, None),
        ("  x websockets", "all_delivered_p99_us", 2, w),
        ("  x project (paired by round)", "all_delivered_p99_us", 2, p),
        ("lost / expected deliveries", "lost", 0, None),
        ("bridge ingest msg/s (seen)", "ingest_forwarded_per_second", 0, None),
        ("bridge ingest msg/s (CPU bound)", "ingest_bridge_cpu_bound_per_second", 0, None),
        ("bridge XADD ingest msg/s (seen)", "ingest_xadd_forwarded_per_second", 0, None),
        (
            "bridge XADD ingest msg/s (CPU bound)",
            "ingest_xadd_bridge_cpu_bound_per_second",
            0,
            None,
        ),
        ("registry's share of server CPU samples %", "registry_share", 2, None),
        ("prometheus-client's share of server CPU samples %", "metrics_share", 2, None),
        ("storm handshakes/s", "storm_handshakes_per_second", 0, None),
        ("storm s until all welcomed", "storm_seconds", 2, None),
        ("  x websockets", "storm_seconds", 2, w),
        ("storm server CPU us/handshake", "storm_server_cpu_us_per_handshake", 0, None),
        ("storm failed / clients", "storm_failed", 0, None),
        ("storm welcomed at the first attempt", "storm_welcomed_first_attempt", 0, None),
        ("storm clients refused busy (4503) at least once", "storm_refused_busy", 0, None),
        ("storm retries after busy", "storm_retries", 0, None),
    ]
    if not any(name in VARIANTS for name in names):  # no variant: no row against project
        rows = [row for row in rows if row[3] != p and not row[1].startswith("same_server")]
    lines = [
        "| metric (median of rounds) | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for label, key, digits, ratio in rows:
        cells = []
        for name in names:
            entry = targets[name]
            value = entry.get(f"vs_{ratio}", {}).get(key) if ratio else entry.get(key)
            if key == "negotiated":
                cells.append(str(value or "-"))
                continue
            if key == "idle_bytes_per_connection" and not ratio and value is not None:
                value /= 1024
            if key.endswith("_us") and value is not None and not ratio:
                value /= 1000
            if key.endswith("_share") and value is not None:
                value *= 100
            if key == "lost":
                cells.append(f"{entry['lost']:,} / {entry['expected']:,}")
                continue
            if key == "storm_failed":
                storm = f"{entry['storm_failed']:,} / {entry['storm_clients']:,}"
                cells.append(storm if entry.get("storm_clients") else "-")
                continue
            cells.append(_fmt(float(value) if value is not None else None, digits))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("| goal (project) | measured | limit | met |")
    lines.append("| --- | ---: | --- | --- |")
    for goal in results["summary"]["goals"]:
        met = {True: "yes", False: "NO", None: "n/a"}[goal["met"]]
        lines.append(f"| {goal['goal']} | {_fmt(goal['measured'], 2)} | {goal['limit']} | {met} |")
    lines += sweep_report.table(results["summary"].get("sweep"))
    payload = results.get("payload")
    if payload:
        lines.append("")
        config = results.get("config", {})
        lines.append(
            f"payload: {config.get('payload', 'typical')} updates, `data`"
            f" {payload['data_bytes']:.0f} bytes of compact JSON, published message"
            f" {payload['published_bytes']:.0f} bytes (means); bridge ingest:"
            f" {config.get('ingest_payload', 'pad')} updates"
        )
    flags = [(n, f) for n in names for f in targets[n]["flags"]]
    if flags:
        lines.append("")
        lines.extend(f"noisy: {name}: {flag}" for name, flag in flags)
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    """Write the results as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
