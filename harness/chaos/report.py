"""A chaos run's summary: the table printed at the end, and the same as JSON."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.chaos.checker import RULES, Anomaly, Report


@dataclass(frozen=True)
class RunInfo:
    """What the report does not know: how the run was made."""

    seed: int
    duration: float
    clients: int
    rate: float
    run_directory: str
    nemesis_errors: int = 0
    drained: bool = True
    """Whether every client received each publisher's last accepted update in time."""
    origin: float = 0.0
    """The run's start, ``time.monotonic()``: times are reported relative to it."""
    wall_origin: float = 0.0
    """The same instant, ``time.time()``: for the clock time of the processes' logs."""

    def clock(self, t: float) -> str:
        """A monotonic time as the local clock time the processes' logs show."""
        wall = self.wall_origin + (t - self.origin)
        return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall % 1 * 1000):03d}"


def summary(info: RunInfo, report: Report) -> dict[str, Any]:
    """The run's figures as JSON-ready data."""
    kinds = sorted(report.by_fault, key=lambda kind: (kind == "none", kind))
    return {
        "ok": report.ok,
        "seed": info.seed,
        "duration": info.duration,
        "clients": info.clients,
        "rate": info.rate,
        "run_directory": info.run_directory,
        "faults": dict(sorted(report.faults.items())),
        "nemesis_errors": info.nemesis_errors,
        "sent": report.sent,
        "accepted": report.accepted,
        "expected": report.expected,
        "deliveries": report.deliveries,
        "delivered_not_accepted": report.delivered_not_accepted,
        "unknown_deliveries": report.unknown_deliveries,
        "lost": report.lost,
        "covered_by_reset": report.covered,
        "duplicated": report.duplicated,
        "reordered": report.reordered,
        "position_regressions": report.regressions,
        "resets": dict(sorted(report.resets.items())),
        "attempts": report.attempts,
        "reconnects": report.reconnects,
        "close_codes": dict(sorted(report.close_codes.items())),
        "never_welcomed": report.never_welcomed,
        "longest_disconnection": round(report.longest_disconnection, 3),
        "longest_disconnection_client": report.longest_disconnection_client,
        "drained": info.drained,
        "by_fault": {kind: dict(sorted(report.by_fault[kind].items())) for kind in kinds},
        "per_client": {name: dict(counts) for name, counts in sorted(report.per_client.items())},
        "samples": [anomaly_record(info, anomaly) for anomaly in report.samples()],
    }


def anomaly_record(info: RunInfo, anomaly: Anomaly) -> dict[str, Any]:
    """One anomaly as JSON-ready data, its time relative to the run's start."""
    return {
        "rule": anomaly.rule,
        "client": anomaly.client,
        "publisher": anomaly.publisher,
        "n": anomaly.n,
        "t": round(anomaly.t - info.origin, 3),
        "clock": info.clock(anomaly.t),
        "fault": anomaly.fault,
        "detail": anomaly.detail,
    }


def _pairs(counts: Mapping[str, object]) -> str:
    return ", ".join(f"{key} {value}" for key, value in counts.items()) or "-"


def table(data: Mapping[str, Any]) -> str:
    """The summary as the text table the run prints at the end."""
    rows: list[tuple[str, str]] = [
        ("seed", str(data["seed"])),
        ("duration", f"{data['duration']:g} s, {data['clients']} clients, {data['rate']:g}/s each"),
        ("faults", _pairs(data["faults"])),
        ("sent", _pairs(data["sent"])),
        ("accepted", _pairs(data["accepted"])),
        ("expected deliveries", str(data["expected"])),
        ("deliveries", str(data["deliveries"])),
        ("  of not accepted", str(data["delivered_not_accepted"])),
        ("lost", str(data["lost"])),
        ("  covered by a reset", str(data["covered_by_reset"])),
        ("duplicated", str(data["duplicated"])),
        ("reordered", str(data["reordered"])),
        ("position regressions", str(data["position_regressions"])),
        ("resets", _pairs(data["resets"])),
        ("reconnects", f"{data['reconnects']} ({data['attempts']} attempts)"),
        ("connections ended by", _pairs(data["close_codes"])),
        (
            "longest disconnection",
            f"{data['longest_disconnection']:.2f} s"
            f" ({data['longest_disconnection_client'] or '-'})",
        ),
        ("drained at the end", "yes" if data["drained"] else "NO (bound passed)"),
        ("nemesis errors", str(data["nemesis_errors"])),
        ("run directory", data["run_directory"]),
    ]
    if data["never_welcomed"]:
        rows.append(("never welcomed", ", ".join(data["never_welcomed"])))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    columns = ("faults", *RULES, "resets")
    lines += ["", "per fault kind in effect:"]
    lines.append(f"  {'kind':<14}" + "".join(f"{column:>13}" for column in columns))
    for kind, counts in data["by_fault"].items():
        cells = "".join(f"{counts.get(column, 0):>13}" for column in columns)
        lines.append(f"  {kind:<14}{cells}")
    verdict = "OK" if data["ok"] else "FAILED"
    failures = ", ".join(f"{rule} {data[_key(rule)]}" for rule in RULES)
    lines += ["", f"{verdict}: {failures}"]
    if data["samples"]:
        lines.append("examples:")
        for sample in data["samples"][:12]:
            lines.append(
                f"  {sample['rule']:<12} {sample['client']:<10} {sample['publisher']}"
                f" #{sample['n']} at {sample['t']:.3f} s ({sample['clock']}, {sample['fault']})"
                f" {sample['detail']}"
            )
    return "\n".join(lines)


def _key(rule: str) -> str:
    return "position_regressions" if rule == "regressions" else rule
