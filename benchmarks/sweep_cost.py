"""The re-validation sweep's cost on a running project target ([16]).

Every server process judges every connection's grant again every
``JOBUPDATES_REAUTH_SECONDS / 2`` (:class:`jobupdates.access.revocation.Authorities`)
and observes each sweep's seconds in the histogram ``jobupdates_reauth_sweep_seconds``,
which the harness reads from ``/metrics`` (as the staff user it logged in as):

* in an idle window right after the connection ramp, every :data:`POLL_SECONDS`,
  shorter than the sweeps' period: each sweep's seconds are then the growth of the
  histogram's sum between two reads (exact, per sweep). The server's CPU over the
  window is measured too: against ``project-nosweep``'s, the difference is the sweeps';
* at the end of the fan-out phases: the sweeps during them, under load (mean; the
  max only as the bound of the histogram's bucket).

The connections swept are those the server logged as admitted with a user (each
keeps a grant: :meth:`jobupdates.access.holding.HoldsAuthority.hold_authority`) and
not yet disconnected. Each client has a session of its own
(:mod:`benchmarks.sessions`), so a sweep looks up as many sessions as connections.
"""

from __future__ import annotations

import math
import re
import time
import urllib.request
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from benchmarks.loadgen_client import GeneratorPool
from benchmarks.phases import Sample
from benchmarks.targets import Stack

METRIC = "jobupdates_reauth_sweep_seconds"
SWEEPING = {"project": True, "project-nosweep": False}
"""The targets watched, and whether their server sweeps."""
INTERVAL_SECONDS = 2.5
"""The pause between two sweeps: half the default ``JOBUPDATES_REAUTH_SECONDS`` (5 s),
which the project targets keep."""
POLL_SECONDS = 1.0
"""Between two reads of ``/metrics`` in the idle window: under the sweeps' period."""
CONNECTED = re.compile(r"client \w+ connected \(user (?!None\))")
DISCONNECTED = re.compile(r"client \w+ disconnected \(")
_SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? (\S+)")


@dataclass(frozen=True)
class Reading:
    """The sweep histogram and the connections gauge of one server, at one moment."""

    at: float
    count: float
    total: float
    buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative count per upper bound (``le``)."""
    connections: float | None = None


def parse(text: str, at: float) -> Reading:
    """Read the sweep histogram and ``jobupdates_connections`` off a ``/metrics`` page."""
    count = total = 0.0
    buckets: dict[float, float] = {}
    connections: float | None = None
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        if name == f"{METRIC}_count":
            count = value
        elif name == f"{METRIC}_sum":
            total = value
        elif name == f"{METRIC}_bucket":
            bound = re.search(r'le="([^"]+)"', labels)
            if bound:
                buckets[float(bound.group(1))] = value
        elif name == "jobupdates_connections":
            connections = (connections or 0.0) + value
    return Reading(at, count, total, buckets, connections)


def read(stack: Stack) -> Reading:
    """GET the target's ``/metrics`` as its staff login; return the sweep's figures."""
    url = f"{stack.origin}/metrics"
    request = urllib.request.Request(url, headers={"Cookie": stack.cookie})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http://)
        return parse(response.read().decode(), time.monotonic())


def grants_held(stack: Stack) -> int:
    """Connections the server admitted with a user and has not seen go, by its log."""
    return len(stack.server.matching(CONNECTED.pattern)) - len(
        stack.server.matching(DISCONNECTED.pattern)
    )


def between(first: Reading, last: Reading) -> dict[str, Any]:
    """The sweeps that ended between two readings: how many, mean and bounded max seconds."""
    sweeps = round(last.count - first.count)
    total = last.total - first.total
    bound = None
    if sweeps:
        grown = {le: last.buckets.get(le, 0.0) - n for le, n in first.buckets.items()}
        bound = min((le for le, n in grown.items() if round(n) >= sweeps), default=None)
    over = bound is not None and math.isinf(bound)  # kept out of the JSON: no Infinity there
    wall = last.at - first.at
    return {
        "seconds": wall,
        "sweeps": sweeps,
        "sweep_seconds_total": total,
        "mean_seconds": total / sweeps if sweeps else None,
        "max_seconds_at_most": None if over else bound,
        "max_over_top_bucket": over,
        "wall_share": total / wall if wall else None,
    }


def idle_window(
    stack: Stack, pool: GeneratorPool, seconds: float
) -> tuple[dict[str, Any], Reading]:
    """Read ``/metrics`` every :data:`POLL_SECONDS` for ``seconds``; report each sweep
    and the server's CPU, and return the last reading."""
    before = Sample.take(stack, pool)
    readings = [read(stack)]
    deadline = readings[0].at + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(POLL_SECONDS, left))  # sampling period: there is no event to wait for
        readings.append(read(stack))
    usage = Sample.take(stack, pool).since(before)
    durations = [b.total - a.total for a, b in pairwise(readings) if round(b.count - a.count) == 1]
    result = between(readings[0], readings[-1])
    result.update(
        durations=durations,
        unresolved=result["sweeps"] - len(durations),  # two in one poll: only their sum is known
        mean_seconds=sum(durations) / len(durations) if durations else result["mean_seconds"],
        max_seconds=max(durations, default=None),
        reads=len(readings),
        server_cpu_share=usage["cpu_seconds"]["server"] / usage["seconds"],
        usage=usage,
        flags=list(usage["flags"]),
    )
    return result, readings[-1]


class Watch:
    """The sweep of one target's server, from the end of the ramp to the end of the
    fan-out phases: the idle window at once (``window`` seconds, 0: none), the rest
    at :meth:`finish`."""

    def __init__(self, stack: Stack, pool: GeneratorPool, connected: int, window: float) -> None:
        self.stack, self.pool, self.connected = stack, pool, connected
        self.sweeping = SWEEPING[stack.name]
        self.idle: dict[str, Any] | None = None
        if window > 0:
            self.idle, self.mark = idle_window(stack, pool, window)
        else:
            self.mark = read(stack)
        self.grants = grants_held(stack)

    def finish(self) -> dict[str, Any]:
        """Report the sweep's figures, and flags if it did not sweep every connection."""
        last = read(self.stack)
        phases = between(self.mark, last)  # wall seconds: under load, the thread waits too
        idle_mean = (self.idle or {}).get("mean_seconds")
        per_connection = idle_mean if idle_mean is not None else phases["mean_seconds"]
        grants = min(self.grants, grants_held(self.stack))
        result: dict[str, Any] = {
            "sweeping": self.sweeping,
            "interval_seconds": INTERVAL_SECONDS if self.sweeping else None,
            "connected": self.connected,
            "connections_gauge": last.connections,
            "grants": grants,
            "sessions": len(set(self.stack.cookies)) or 1,
            "idle": self.idle,
            "phases": phases,
            "us_per_connection": per_connection / grants * 1e6
            if per_connection is not None and grants
            else None,
            "interval_share": per_connection / INTERVAL_SECONDS
            if per_connection is not None and self.sweeping
            else None,
            "flags": [],
        }
        result["flags"] = self._flags(result)
        return result

    def _flags(self, result: dict[str, Any]) -> list[str]:
        flags = [] if self.idle is None else list(self.idle["flags"])
        sweeps = result["phases"]["sweeps"] + (self.idle or {}).get("sweeps", 0)
        if self.sweeping and not sweeps:
            flags.append("the sweep did not run while the connections were open")
        if not self.sweeping and sweeps:
            flags.append(f"{sweeps} sweeps on a server with the sweep off")
        if self.sweeping and result["grants"] != self.connected:
            flags.append(f"{result['grants']} grants held for {self.connected} connections")
        return flags
