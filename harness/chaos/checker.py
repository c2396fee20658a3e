"""The chaos run's verdict, from its records alone: pure, no I/O.

Written against the client contract (docs/protocol.md), not the product's code.
Per logical client ``c`` (every connection it made, in the order it read):

* **expected**: per publisher, every update Redis accepted whose call began at
  or after ``c``'s first ``welcome`` arrived (so Redis applied it after the
  server sent that welcome: "every update published after it reaches the
  connection"), and before publishing stopped;
* **duplicated**: a ``(publisher, n)`` ``job_update`` delivered again;
* **lost**: an expected update never delivered, unless a ``reset`` covers it:
  a reset read at point R covers, per publisher, the numbers strictly between
  the last one delivered before R and the first one delivered after R (or every
  later one if none came after);
* **reordered**: a first delivery whose n is below the highest n already
  delivered from that publisher;
* **position regression**: a ``job_update`` whose position (two integers,
  ``<ms>-<seq>``) is not strictly greater than the previous ``job_update``'s,
  across every connection and publisher (one without a position counts too).

Each anomaly is charged to the fault in effect: the most recent one started
before the delivery or, for a loss, before the update was accepted (its call
returned); ``none`` if none had started. Deliveries of updates Redis did not
accept are allowed (an exception may still have been applied) and counted.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.chaos.records import PUBLISHERS, ClientLog, Fault, Frame, Update

RULES = ("lost", "duplicated", "reordered", "regressions")
"""The four counts that fail a run."""
SAMPLES = 20
"""Anomalies shown per rule, as examples."""


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One broken rule: which client, which update, when, under which fault."""

    rule: str
    client: str
    publisher: str | None
    n: int | None
    t: float
    fault: str
    detail: str = ""


@dataclass
class Report:
    """What :func:`check` found. Times are ``time.monotonic()`` readings, durations s."""

    clients: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    expected: int = 0
    deliveries: int = 0
    delivered_not_accepted: int = 0
    unknown_deliveries: int = 0
    """``job_update`` messages that are no publisher's numbered update."""
    lost: int = 0
    covered: int = 0
    """Expected updates not delivered, but covered by a reset (not lost)."""
    duplicated: int = 0
    reordered: int = 0
    regressions: int = 0
    resets: Counter[str] = field(default_factory=Counter)
    """Resets by reason."""
    attempts: int = 0
    reconnects: int = 0
    """Welcomed connections after each client's first."""
    close_codes: Counter[str] = field(default_factory=Counter)
    """Connections by how they ended: a close code, or the error that kept one from opening."""
    never_welcomed: list[str] = field(default_factory=list)
    longest_disconnection: float = 0.0
    longest_disconnection_client: str = ""
    faults: Counter[str] = field(default_factory=Counter)
    by_fault: dict[str, Counter[str]] = field(default_factory=dict)
    """Per fault kind in effect ("none" too): faults, lost, duplicated, reordered,
    regressions, resets."""
    per_client: dict[str, Counter[str]] = field(default_factory=dict)
    """Clients with an anomaly: their counts per rule."""
    anomalies: list[Anomaly] = field(default_factory=list)
    """Every anomaly, client by client, each client's in the order found."""

    def samples(self, per_rule: int = SAMPLES) -> list[Anomaly]:
        """The first ``per_rule`` anomalies of each rule."""
        kept: Counter[str] = Counter()
        samples = []
        for anomaly in self.anomalies:
            kept[anomaly.rule] += 1
            if kept[anomaly.rule] <= per_rule:
                samples.append(anomaly)
        return samples

    @property
    def failures(self) -> int:
        return self.lost + self.duplicated + self.reordered + self.regressions

    @property
    def ok(self) -> bool:
        return self.failures == 0


class FaultIndex:
    """Which fault was in effect at a time: the most recent one started before it."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        ordered = sorted(faults, key=lambda fault: fault.start)
        self.starts = [fault.start for fault in ordered]
        self.kinds = [fault.kind for fault in ordered]

    def at(self, t: float) -> str:
        i = bisect.bisect_left(self.starts, t) - 1
        return self.kinds[i] if i >= 0 else "none"


def check(
    publishers: Mapping[str, Sequence[Update]],
    clients: Sequence[ClientLog],
    faults: Sequence[Fault],
    stopped: float,
) -> Report:
    """Check every client's frames against what the publishers sent.

    Args:
        publishers: Each publisher's updates (its name is their ``job_id``).
        clients: Every logical client's log.
        faults: The nemesis's faults.
        stopped: When publishing stopped: later updates are not expected.
    """
    report = Report(clients=len(clients))
    index = FaultIndex(faults)
    for fault in faults:
        report.faults[fault.kind] += 1
        _tally(report, fault.kind, "faults")
    for name, updates in publishers.items():
        report.sent[name] = len(updates)
        report.accepted[name] = sum(1 for update in updates if update.accepted)
    accepted = {
        name: {update.n: update.accepted for update in updates}
        for name, updates in publishers.items()
    }
    for log in clients:
        _check_client(report, log, publishers, accepted, index, stopped)
        _connections(report, log)
    return report


def _tally(report: Report, kind: str, what: str, count: int = 1) -> None:
    report.by_fault.setdefault(kind, Counter())[what] += count


def _anomaly(report: Report, anomaly: Anomaly) -> None:
    _tally(report, anomaly.fault, anomaly.rule)
    report.per_client.setdefault(anomaly.client, Counter())[anomaly.rule] += 1
    report.anomalies.append(anomaly)


def _check_client(
    report: Report,
    log: ClientLog,
    publishers: Mapping[str, Sequence[Update]],
    accepted: Mapping[str, Mapping[int, bool]],
    index: FaultIndex,
    stopped: float,
) -> None:
    frames = list(log.frames())
    first_welcome = next((f.t for f in frames if f.kind == "welcome"), None)
    seen: dict[str, dict[int, Frame]] = {name: {} for name in (*PUBLISHERS, *publishers)}
    """Per publisher, each number's first delivery."""
    highest: dict[str, int] = {}
    delivered: dict[str, tuple[list[int], list[int]]] = {name: ([], []) for name in seen}
    resets: list[int] = []
    last: Frame | None = None
    """The previous ``job_update`` with a position."""

    def flag(rule: str, frame: Frame, detail: str = "") -> None:
        setattr(report, rule, getattr(report, rule) + 1)
        fault = index.at(frame.t)
        _anomaly(report, Anomaly(rule, log.name, frame.publisher, frame.n, frame.t, fault, detail))

    for i, frame in enumerate(frames):
        if frame.kind == "reset":
            resets.append(i)
            report.resets[frame.detail or "?"] += 1
            _tally(report, index.at(frame.t), "resets")
            continue
        if frame.kind != "job_update":
            continue
        report.deliveries += 1
        if frame.position is None:
            flag("regressions", frame, "no position")
        else:
            if last is not None and last.position is not None and frame.position <= last.position:
                flag("regressions", frame, f"{_describe(frame)} after {_describe(last)}")
            last = frame
        name, n = frame.publisher, frame.n
        if name is None or n is None:
            report.unknown_deliveries += 1
            continue
        if not accepted.get(name, {}).get(n, False):
            report.delivered_not_accepted += 1
        first = seen[name].get(n)
        if first is not None:
            flag("duplicated", frame, f"{_describe(frame)}; first {_describe(first)}")
        else:
            if n < highest.get(name, -1):
                flag("reordered", frame, f"{_describe(frame)} after #{highest[name]}")
            seen[name][n] = frame
            highest[name] = max(n, highest.get(name, -1))
        delivered[name][0].append(i)
        delivered[name][1].append(n)

    if first_welcome is None:
        report.never_welcomed.append(log.name)
        return
    for name, updates in publishers.items():
        covers = _covers(resets, *delivered[name])
        for update in updates:
            if not update.accepted or not first_welcome <= update.sent < stopped:
                continue
            report.expected += 1
            if update.n in seen[name]:
                continue
            if any(low < update.n < high for low, high in covers):
                report.covered += 1
                continue
            report.lost += 1
            fault = index.at(update.replied)
            _anomaly(report, Anomaly("lost", log.name, name, update.n, update.replied, fault))


def _covers(
    resets: Sequence[int], indices: Sequence[int], numbers: Sequence[int]
) -> list[tuple[float, float]]:
    """Per reset at frame index R, the open interval of one publisher's numbers it
    covers: (last delivered before R, first delivered after R)."""
    covers: list[tuple[float, float]] = []
    for reset in resets:
        k = bisect.bisect_left(indices, reset)
        low = numbers[k - 1] if k > 0 else -1
        high = numbers[k] if k < len(numbers) else float("inf")
        covers.append((low, high))
    return covers


def _connections(report: Report, log: ClientLog) -> None:
    welcomed = 0
    for connection in log.connections:
        report.attempts += 1
        if connection.welcomed is not None:
            welcomed += 1
        if connection.code is not None:
            report.close_codes[str(connection.code)] += 1
        elif connection.error is not None:
            report.close_codes[connection.error] += 1
    report.reconnects += max(0, welcomed - 1)
    for start, end in log.disconnected:
        if end - start > report.longest_disconnection:
            report.longest_disconnection = end - start
            report.longest_disconnection_client = log.name


def _describe(frame: Frame) -> str:
    """``xadd #12 at 1732570000000-0 (connection 3)``."""
    at = f"{frame.position[0]}-{frame.position[1]}" if frame.position else "no position"
    return f"{frame.publisher} #{frame.n} at {at} (connection {frame.conn})"
