"""The ``/ws/stats`` document, built from a registry snapshot and the bridges' reports.

Pure: no Django or Redis. :func:`stats_document` is all the JSON view returns.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from jobupdates.monitoring.records import Snapshot
from jobupdates.protocol.dead_letters import DeadLetter
from jobupdates.protocol.reports import BridgeReport

__all__ = ["RECENT_DEAD_LETTERS", "DeadLetters", "stats_document"]

RECENT_DEAD_LETTERS = 20
"""How many of the newest dead letters ``/ws/stats`` shows."""


@dataclass(frozen=True)
class DeadLetters:
    """What ``/ws/stats`` shows of the dead-letter list.

    Attributes:
        recent: The newest entries, newest first.
        kept: How many entries the list holds.
        capacity: How many it keeps at most (``JOBUPDATES_DEAD_LETTER_SIZE``).
    """

    recent: list[DeadLetter]
    kept: int
    capacity: int

    def as_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "capacity": self.capacity,
            "recent": [asdict(letter) for letter in self.recent],
        }


def _sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: collections.Counter[str] = collections.Counter()
    for each in counts:
        total.update(each)
    return dict(sorted(total.items()))


def _bridge(reports: list[BridgeReport], now: float) -> dict[str, Any]:
    subscribed = [r for r in reports if r.subscribed]
    last = max((r.last_message_at for r in reports if r.last_message_at), default=None)
    started = min((r.started_at for r in reports if r.started_at is not None), default=None)
    return {
        "connected": bool(subscribed),
        "state": subscribed[0].state if subscribed else (reports[0].state if reports else None),
        "last_message_at": last,
        "seconds_since_last_message": round(now - last, 3) if last else None,
        "lag_seconds": max((r.lag_seconds for r in reports), default=None),
        "reconnects": sum(r.reconnects for r in reports),
        "recovered": sum(r.recovered for r in reports),
        "gaps": sum(r.gaps for r in reports),
        "uptime_seconds": round(now - started, 3) if started is not None else None,
        "bridges": [
            {
                "bridge": r.bridge,
                "state": r.state,
                "role": r.role,
                "takeovers": r.takeovers,
                "recovered": r.recovered,
                "gaps": r.gaps,
                "primary": r.primary,
                "failovers": r.failovers,
                "started_at": r.started_at,
                "reported_at": r.reported_at,
            }
            for r in reports
        ],
    }


def stats_document(
    snapshot: Snapshot,
    reports: list[BridgeReport],
    now: float,
    *,
    dead_letters: DeadLetters | None = None,
) -> dict[str, Any]:
    """Return what ``/ws/stats`` reports.

    Args:
        snapshot: The live instances and their clients.
        reports: The live bridges' reports (:func:`jobupdates.ingest.report.read_reports`).
        now: The current Unix time.
        dead_letters: The dead-letter list's newest entries and size, if read.

    Returns:
        ``connected_clients`` (total), ``instances`` (clients and uptime per
        instance), ``distinct_users``, ``messages_bridged`` (total and per
        status), ``rejected`` (total, per reason, and the most recent),
        ``bridge`` (connected, state, last message, lag) and ``uptime_seconds``
        (of the oldest live instance), ``dead_letters`` (``kept``, ``capacity`` and the
        ``recent`` entries, newest first), plus ``generated_at``.
    """
    per_instance = snapshot.per_instance()
    recent = sorted(
        (item for r in reports for item in r.recent_rejects),
        key=lambda item: item.at,
        reverse=True,
    )
    rejected = _sum_counts(r.rejected for r in reports)
    oldest = min((i.started_at for i in snapshot.instances.values()), default=None)
    return {
        "generated_at": now,
        "connected_clients": len(snapshot.clients),
        "instances": {
            instance: {
                "connected_clients": per_instance.get(instance, 0),
                "host": info.host,
                "pid": info.pid,
                "uptime_seconds": round(now - info.started_at, 3),
                "reported_at": info.reported_at,
            }
            for instance, info in sorted(snapshot.instances.items())
        },
        "distinct_users": snapshot.distinct_users(),
        "messages_bridged": {
            "total": sum(r.forwarded for r in reports),
            "by_status": _sum_counts(r.forwarded_by_status for r in reports),
        },
        "rejected": {
            "total": sum(rejected.values()),
            "by_reason": rejected,
            "recent": [asdict(item) for item in recent[:20]],
        },
        "bridge": _bridge(reports, now),
        "uptime_seconds": round(now - oldest, 3) if oldest is not None else None,
        "dead_letters": (dead_letters or DeadLetters([], 0, 0)).as_json(),
    }
