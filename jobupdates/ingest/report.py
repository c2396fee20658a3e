"""The bridge's numbers in Redis, for ``/ws/stats`` and ``/metrics`` on any instance.

The bridge process runs :meth:`BridgeStatsPublisher.run` beside the bridge:
once per ``JOBUPDATES_REGISTRY_INTERVAL`` it writes one JSON report (one
pipelined round trip: ``SET`` with a TTL of two intervals, plus ``SADD`` to
the set of bridges). Readers (:func:`read_reports`) ignore reports that
expired, so a dead bridge disappears like a dead server process.

The publisher only reads the bridge's ``stats`` and ``state``; it derives
what the bridge does not keep:

* ``lag_seconds``: how long the update in hand has waited since its receipt
  (the bridge handles one message at a time, so an update is in hand while
  ``received`` exceeds the outcomes counted), else 0;
* ``recent_rejects``: the reasons whose counts rose since the previous report,
  stamped with that report's time (exact times if the bridge keeps
  ``stats.recent_rejects``, an iterable of ``(time, reason)``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobupdates.ingest.stopping import pause
from jobupdates.monitoring.records import KEY_PREFIX

__all__ = ["BRIDGES_KEY", "BridgeStatsPublisher", "bridge_key", "read_reports"]

logger = logging.getLogger(__name__)

BRIDGES_KEY = f"{KEY_PREFIX}:bridges"
RECENT_REJECTS = 20
"""How many recent rejections a report lists."""


def bridge_key(bridge_id: str) -> str:
    """Return the key of one bridge's report."""
    return f"{KEY_PREFIX}:bridge:{bridge_id}"


class _Bridge(Protocol):
    @property
    def stats(self) -> Any: ...
    @property
    def state(self) -> Any: ...
    @property
    def stopping(self) -> asyncio.Event: ...
    @property
    def role(self) -> Any: ...
    @property
    def election(self) -> Any: ...


def _counts(counter: Any) -> dict[str, int]:
    if not isinstance(counter, Mapping):
        return {}
    return {str(getattr(key, "value", key)): int(value) for key, value in counter.items()}


class BridgeStatsPublisher:
    """Writes a bridge's report to Redis once per interval."""

    def __init__(
        self, client: aioredis.Redis, *, interval: float, bridge_id: str | None = None
    ) -> None:
        """Args:
        client: The Redis to write to (its own ``socket_timeout`` bounds each write).
        interval: Seconds between reports; a report lives for two.
        bridge_id: This bridge's id; default: host, pid and a random suffix.
        """
        self.client = client
        self.interval = interval
        self.bridge_id = bridge_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started_at = time.time()
        self._last_rejected: dict[str, int] = {}
        self._recent: collections.deque[tuple[float, str]] = collections.deque(
            maxlen=RECENT_REJECTS
        )

    def report(
        self, stats: Any, state: Any, now: float, role: str = "active", takeovers: int = 0
    ) -> dict[str, Any]:
        """Return the report of ``stats`` and ``state`` at ``now`` (no I/O).

        ``role`` is ``active`` or ``standby``; ``takeovers`` counts how often this
        bridge became the active one.
        """
        rejected = _counts(stats.rejected)
        exact = getattr(stats, "recent_rejects", None)
        if exact is not None:
            recent = [(float(at), str(getattr(r, "value", r))) for at, r in exact]
        else:
            for reason, count in sorted(rejected.items()):
                for _ in range(min(count - self._last_rejected.get(reason, 0), RECENT_REJECTS)):
                    self._recent.append((now, reason))
            recent = list(self._recent)
        self._last_rejected = rejected
        outcomes = (
            stats.forwarded + sum(rejected.values()) + getattr(stats, "skipped_as_standby", 0)
        )
        last = getattr(stats, "last_message_at", None)
        in_hand = stats.received > outcomes and last is not None
        return {
            "bridge": self.bridge_id,
            "state": str(getattr(state, "value", state)),
            "role": role,
            "takeovers": takeovers,
            "started_at": self.started_at,
            "reported_at": now,
            "received": stats.received,
            "forwarded": stats.forwarded,
            "forwarded_by_status": _counts(getattr(stats, "forwarded_by_status", None)),
            "rejected": rejected,
            "recent_rejects": [{"at": at, "reason": r} for at, r in recent[-RECENT_REJECTS:]],
            "reconnects": stats.reconnects,
            "last_message_at": last,
            "lag_seconds": max(0.0, now - last) if in_hand and last is not None else 0.0,
        }

    async def publish(
        self, stats: Any, state: Any, role: str = "active", takeovers: int = 0
    ) -> None:
        """Write one report: a single pipelined round trip. Errors are logged, not raised."""
        report = self.report(stats, state, time.time(), role, takeovers)
        document = json.dumps(report, separators=(",", ":"))
        ttl_ms = max(1, int(self.interval * 2000))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(bridge_key(self.bridge_id), document, px=ttl_ms)
                pipe.sadd(BRIDGES_KEY, self.bridge_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("could not publish the bridge's stats (%s: %s)", type(exc).__name__, exc)

    async def run(self, bridge: _Bridge) -> None:
        """Publish ``bridge``'s report every interval until it stops, then once more."""
        while not bridge.stopping.is_set():
            takeovers = bridge.election.takeovers if bridge.election else 0
            await self.publish(bridge.stats, bridge.state, str(bridge.role), takeovers)
            await pause(bridge.stopping, self.interval)
        await self.publish(bridge.stats, "stopped", "standby")


def read_reports(client: redis.Redis) -> list[dict[str, Any]]:
    """Return the reports of the live bridges (two round trips); prune expired ones.

    Raises:
        redis.exceptions.RedisError: If Redis cannot be read.
    """
    ids = sorted(
        i.decode() if isinstance(i, bytes) else str(i) for i in client.smembers(BRIDGES_KEY)
    )
    if not ids:
        return []
    reports: list[dict[str, Any]] = []
    dead: list[str] = []
    for bridge_id, raw in zip(ids, client.mget([bridge_key(i) for i in ids]), strict=True):
        try:
            report = json.loads(raw) if raw is not None else None
        except ValueError:
            report = None
        if isinstance(report, dict):
            reports.append(report)
        else:
            dead.append(bridge_id)
    if dead:
        client.srem(BRIDGES_KEY, *dead)
    return reports
