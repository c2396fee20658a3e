"""The re-validation sweep's figures in the summary and the table ([16]).

For ``project`` (sweep on) and ``project-nosweep`` (``JOBUPDATES_REAUTH_SECONDS=0``),
from each run's ``sweep`` (:mod:`benchmarks.sweep_cost`): the connections swept, the
sweeps' seconds (idle, each timed; under load, their mean), per connection and as a
share of the interval, the server's CPU in the idle window, beside the CPU per
delivery of the throughput phase. When both targets ran, the A/B: CPU per delivery
with the sweep on over off, paired by round (their median, range, and a bootstrap
95% confidence interval of their geometric mean), and the idle CPU the sweep adds.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

ON, OFF = "project", "project-nosweep"
RESAMPLES = 5000
TOP_BUCKET = 10.0
"""The histogram's last finite bound (``jobupdates.monitoring.metrics.LATENCY_BUCKETS``)."""


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _target(runs: list[dict[str, Any]]) -> dict[str, Any]:
    sweeps = [run["sweep"] for run in runs]
    idle = [s["idle"] or {} for s in sweeps]
    under_load = [s["phases"] for s in sweeps]
    deliveries = [run["throughput"] for run in runs if "throughput" in run]
    phases = [run[p] for run in runs for p in ("throughput", "latency") if p in run]
    return {
        "rounds": len(runs),
        "sweeping": sweeps[0]["sweeping"],
        "interval_seconds": sweeps[0]["interval_seconds"],
        "connected": min(s["connected"] for s in sweeps),
        "grants": min(s["grants"] for s in sweeps),
        "sessions": min(s["sessions"] for s in sweeps),
        "idle_sweeps": sum(i.get("sweeps", 0) for i in idle),
        "phase_sweeps": sum(s["phases"]["sweeps"] for s in sweeps),
        "idle_mean_seconds": _median([i.get("mean_seconds") for i in idle]),
        "idle_max_seconds": max(
            (i["max_seconds"] for i in idle if i.get("max_seconds")), default=None
        ),
        "phase_mean_seconds": _median([s["phases"]["mean_seconds"] for s in sweeps]),
        "phase_max_at_most": max(
            (p["max_seconds_at_most"] for p in under_load if p["max_seconds_at_most"]), default=None
        ),
        "phase_max_over_top_bucket": any(p.get("max_over_top_bucket") for p in under_load),
        "us_per_connection": _median([s["us_per_connection"] for s in sweeps]),
        "interval_share": _median([s["interval_share"] for s in sweeps]),
        "idle_server_cpu_share": _median([i.get("server_cpu_share") for i in idle]),
        "server_cpu_us_per_delivery": _median(
            [d["server_cpu_us_per_delivery"] for d in deliveries]
        ),
        "lost": sum(p["lost"] for p in phases),
        "expected": sum(p["expected"] for p in phases),
    }


def _paired(runs: list[dict[str, Any]], path: tuple[str, ...]) -> list[tuple[int, float, float]]:
    """(round, on, off) for every round where both targets measured ``path``."""
    by_round: dict[int, dict[str, float]] = {}
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if run["target"] in (ON, OFF) and value is not None:
            by_round.setdefault(run["round"], {})[run["target"]] = value
    return [(r, v[ON], v[OFF]) for r, v in sorted(by_round.items()) if ON in v and OFF in v]


def geometric_ci(ratios: list[float]) -> tuple[float, float] | None:
    """A bootstrap 95% confidence interval of the geometric mean of ``ratios`` (seeded)."""
    if len(ratios) < 2:
        return None
    logs = [math.log(r) for r in ratios]
    draw = random.Random(16)
    means = sorted(statistics.fmean(draw.choices(logs, k=len(logs))) for _ in range(RESAMPLES))
    return math.exp(means[int(0.025 * RESAMPLES)]), math.exp(means[int(0.975 * RESAMPLES) - 1])


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The sweep's figures per watched target, and the on/off A/B if both ran."""
    watched = [run for run in runs if run.get("sweep")]
    if not watched:
        return None
    names = dict.fromkeys(run["target"] for run in watched)
    targets = {n: _target([r for r in watched if r["target"] == n]) for n in names}
    cpu = _paired(runs, ("throughput", "server_cpu_us_per_delivery"))
    idle = _paired(runs, ("sweep", "idle", "server_cpu_share"))
    ratios = [on / off for _, on, off in cpu if off]
    return {
        "targets": targets,
        "on_off": {
            "rounds": [r for r, _, _ in cpu],
            "server_cpu_us_per_delivery": [[on, off] for _, on, off in cpu],
            "cpu_ratios": ratios,
            "cpu_ratio": _median(list(ratios)),
            "cpu_ratio_geometric_mean": math.exp(statistics.fmean(math.log(r) for r in ratios))
            if ratios
            else None,
            "cpu_ratio_ci95": geometric_ci(ratios),
            "idle_cpu_share_added": _median([on - off for _, on, off in idle]),
        },
    }


def goals(sweep: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The [16] goal: CPU per delivery with the sweep within noise of without it."""
    if not sweep or not sweep["on_off"]["cpu_ratios"]:
        return []
    on_off = sweep["on_off"]
    ci = on_off["cpu_ratio_ci95"]
    return [
        {
            "goal": "CPU/delivery, sweep on / off (paired by round)",
            "measured": on_off["cpu_ratio"],
            "limit": "within noise: the 95% CI includes 1",
            "met": None if ci is None else ci[0] <= 1.0,
        }
    ]


def _f(value: float | None, digits: int, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def table(sweep: dict[str, Any] | None) -> list[str]:
    """The sweep's rows, one column per watched target; then the A/B and its rounds."""
    if not sweep:
        return []
    targets = sweep["targets"]
    names = list(targets)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, cell: Any) -> None:
        rows.append((label, [cell(targets[n]) for n in names]))

    row("server CPU us/delivery (throughput)", lambda t: _f(t["server_cpu_us_per_delivery"], 2))
    row(
        "connections swept (grants held / connected; sessions)",
        lambda t: (
            f"{t['grants']:,} / {t['connected']:,}; {t['sessions']:,}"
            if t["sweeping"]
            else "sweep off"
        ),
    )
    row(
        "sweeps: idle window / fan-out phases (all rounds)",
        lambda t: f"{t['idle_sweeps']} / {t['phase_sweeps']}",
    )
    row(
        "sweep s, idle: mean / max",
        lambda t: f"{_f(t['idle_mean_seconds'], 3)} / {_f(t['idle_max_seconds'], 3)}",
    )
    row(
        "sweep s, under load: mean / max at most (bucket)",
        lambda t: (
            f"{_f(t['phase_mean_seconds'], 3)} / "
            + (
                f"> {TOP_BUCKET:g}"
                if t["phase_max_over_top_bucket"]
                else _f(t["phase_max_at_most"], 3)
            )
        ),
    )
    row("sweep us per connection", lambda t: _f(t["us_per_connection"], 2))
    row("sweep s / interval (2.5 s) %", lambda t: _f(t["interval_share"], 2, 100))
    row("server CPU % of a core, idle window", lambda t: _f(t["idle_server_cpu_share"], 2, 100))
    row("lost / expected deliveries", lambda t: f"{t['lost']:,} / {t['expected']:,}")
    lines = [
        "",
        "| re-validation sweep, median of rounds | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows),
    ]
    on_off = sweep["on_off"]
    if on_off["cpu_ratios"]:
        ci = on_off["cpu_ratio_ci95"]
        ratios = on_off["cpu_ratios"]
        lines += [
            "",
            f"sweep on / off, server CPU us/delivery, paired by round ({len(ratios)}):"
            f" median {on_off['cpu_ratio']:.3f}, range {min(ratios):.3f}-{max(ratios):.3f},"
            f" geometric mean {on_off['cpu_ratio_geometric_mean']:.3f}"
            + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
            + f"; idle server CPU added: {_f(on_off['idle_cpu_share_added'], 2, 100)}% of a core",
            "per round (on / off us): "
            + ", ".join(
                f"{r}: {on:.2f} / {off:.2f}"
                for r, (on, off) in zip(
                    on_off["rounds"], on_off["server_cpu_us_per_delivery"], strict=True
                )
            ),
        ]
    return lines
