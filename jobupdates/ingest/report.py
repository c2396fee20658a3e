"""The bridge's numbers in Redis, for ``/ws/stats`` and ``/metrics`` on any instance.

The bridge process runs :meth:`BridgeStatsPublisher.run` beside the bridge:
once per ``JOBUPDATES_REGISTRY_INTERVAL`` it writes one
:class:`~jobupdates.protocol.reports.BridgeReport` as JSON (one pipelined round
trip: ``SET`` with a TTL of two intervals, plus ``SADD`` to the set of
bridges). Readers (:func:`read_reports`) ignore reports that expired, so a dead
bridge disappears like a dead server process.

The publisher only reads the bridge's ``stats`` and ``state``; it derives
what the bridge does not keep:

* ``lag_seconds``: while updates are in hand (the bridge works in batches:
  ``received`` exceeds the outcomes counted), the time since the last
  receipt, else 0;
* ``recent_rejects``: the reasons whose counts rose since the previous report,
  stamped with that report's time (exact times if the bridge keeps
  ``stats.recent_rejects``, an iterable of ``(time, reason)``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobupdates.ingest.leadership import Role
from jobupdates.ingest.stopping import pause
from jobupdates.monitoring.instance import expiry_ms, instance_id
from jobupdates.monitoring.records import KEY_PREFIX
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.reports import BridgeReport, BridgeState, MalformedReport, RecentReject

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
        self.bridge_id = bridge_id or instance_id()
        self.started_at = time.time()
        self._last_rejected: dict[str, int] = {}
        self._recent: collections.deque[tuple[float, str]] = collections.deque(
            maxlen=RECENT_REJECTS
        )

    def report(
        self, stats: Any, state: str, now: float, role: str = Role.ACTIVE, takeovers: int = 0
    ) -> BridgeReport:
        """Return the report of ``stats`` and ``state`` at ``now`` (no I/O).

        ``state`` is a :class:`BridgeState`, ``role`` a
        :class:`~jobupdates.ingest.leadership.Role`; ``takeovers`` counts how often this
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
        return BridgeReport(
            bridge=self.bridge_id,
            state=str(state),
            reported_at=now,
            role=str(role),
            takeovers=takeovers,
            started_at=self.started_at,
            received=stats.received,
            forwarded=stats.forwarded,
            forwarded_by_status=_counts(getattr(stats, "forwarded_by_status", None)),
            rejected=rejected,
            recent_rejects=tuple(RecentReject(at, r) for at, r in recent[-RECENT_REJECTS:]),
            reconnects=stats.reconnects,
            last_message_at=last,
            lag_seconds=max(0.0, now - last) if in_hand and last is not None else 0.0,
            recovered=int(getattr(stats, "recovered", 0)),
            gaps=int(getattr(stats, "gaps", 0)),
            primary=str(getattr(stats, "primary", "")),
            failovers=int(getattr(stats, "failovers", 0)),
        )

    async def publish(
        self, stats: Any, state: str, role: str = Role.ACTIVE, takeovers: int = 0
    ) -> None:
        """Write one report: a single pipelined round trip. Errors are logged, not raised."""
        document = self.report(stats, state, time.time(), role, takeovers).to_json()
        ttl_ms = expiry_ms(self.interval)
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
            await self.publish(bridge.stats, bridge.state, bridge.role, takeovers)
            await pause(bridge.stopping, self.interval)
        await self.publish(bridge.stats, BridgeState.STOPPED, Role.STANDBY)


def read_reports(client: redis.Redis) -> list[BridgeReport]:
    """Return the reports of the live bridges (two round trips); prune expired ones.

    A report that does not decode (:class:`~jobupdates.protocol.reports.MalformedReport`)
    is logged and pruned like an expired one; its bridge writes it again.

    Raises:
        redis.exceptions.RedisError: If Redis cannot be read.
    """
    ids = sorted(
        i.decode() if isinstance(i, bytes) else str(i) for i in client.smembers(BRIDGES_KEY)
    )
    if not ids:
        return []
    reports: list[BridgeReport] = []
    dead: list[str] = []
    for bridge_id, raw in zip(ids, client.mget([bridge_key(i) for i in ids]), strict=True):
        if raw is None:
            dead.append(bridge_id)
            continue
        try:
            reports.append(BridgeReport.from_json(raw))
        except MalformedReport as exc:
            logger.warning("ignoring the report of bridge %s: %s", loggable(bridge_id), exc)
            dead.append(bridge_id)
    if dead:
        client.srem(BRIDGES_KEY, *dead)
    return reports
