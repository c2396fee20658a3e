"""The bridge report: one bridge's numbers, for ``/ws/stats`` and ``/metrics`` on any instance.

Pure: no Django, asyncio or I/O. Each bridge writes a :class:`BridgeReport`
to Redis once per interval (:mod:`jobupdates.ingest.report`) as
:meth:`~BridgeReport.to_json`; readers decode it with
:meth:`~BridgeReport.from_json`. A reader may meet a report written by an
older or newer version: fields it does not know are ignored, missing ones
take their defaults, and anything else raises :class:`MalformedReport`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from jobupdates.protocol.logs import loggable

__all__ = ["BridgeReport", "BridgeState", "MalformedReport", "RecentReject"]


class BridgeState(enum.StrEnum):
    """Where a bridge's subscription to Redis stands."""

    STARTING = "starting"
    CONNECTING = "connecting"
    SUBSCRIBED = "subscribed"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


class MalformedReport(ValueError):
    """What a bridge's report key holds is not a report; it is ignored."""


@dataclass(frozen=True, slots=True)
class RecentReject:
    """One recent rejection: when (Unix time) and why (a ``RejectReason`` value)."""

    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class BridgeReport:
    """One bridge's numbers, as of ``reported_at``.

    Attributes:
        bridge: The bridge's instance id.
        state: Its :class:`BridgeState` value (a str: a newer bridge may have others).
        reported_at: When it wrote this report (Unix time).
        role: ``active`` or ``standby`` (``jobupdates.ingest.leadership.Role``).
        takeovers: How often it became the active bridge.
        started_at: When it started (Unix time), if it said.
        received: Messages read from Redis.
        forwarded: Valid updates forwarded.
        forwarded_by_status: Of those, how many per job status.
        rejected: Messages rejected, per ``RejectReason`` value.
        recent_rejects: The latest rejections, oldest first.
        reconnects: Times it lost Redis and reconnected.
        last_message_at: When it last received a message (Unix time), if ever.
        lag_seconds: How long the update in hand has waited; 0 if none.
        recovered: Updates it forwarded from its ring on a takeover.
        gaps: Takeovers whose ring could not cover what the old bridge may not have recorded.
        primary: The Redis (``host:port``) it listens on; with Sentinel, the primary
            the sentinels named. Empty before it first subscribed.
        failovers: Times that address changed while it ran (a Sentinel failover).
    """

    bridge: str
    state: str
    reported_at: float
    role: str = "active"
    takeovers: int = 0
    started_at: float | None = None
    received: int = 0
    forwarded: int = 0
    forwarded_by_status: Mapping[str, int] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    recent_rejects: tuple[RecentReject, ...] = ()
    reconnects: int = 0
    last_message_at: float | None = None
    lag_seconds: float = 0.0
    recovered: int = 0
    gaps: int = 0
    primary: str = ""
    failovers: int = 0

    @property
    def subscribed(self) -> bool:
        """Whether the bridge is subscribed to the workers' channel."""
        return self.state == BridgeState.SUBSCRIBED

    def to_json(self) -> str:
        """Return the report as compact JSON (what the bridge stores in Redis)."""
        document = asdict(self)
        document["state"] = str(self.state)
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> BridgeReport:
        """Read a stored report back, written by this version or another.

        Only ``bridge``, ``state`` and ``reported_at`` are required; other
        missing fields take their defaults, unknown ones are ignored.

        Raises:
            MalformedReport: If ``raw`` is not a JSON object, lacks a required
                field, or has a field of the wrong type.
        """
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MalformedReport(
                f"expected a bridge report (a JSON object), got {loggable(raw)} ({exc})"
            ) from None
        if not isinstance(document, dict):
            raise MalformedReport(
                f"expected a bridge report (a JSON object), got {loggable(document)}"
            )
        get = _Fields(document)
        return cls(
            bridge=get.text("bridge"),
            state=get.text("state"),
            reported_at=get.number("reported_at"),
            role=get.text("role", "active"),
            takeovers=get.count("takeovers"),
            started_at=get.optional_number("started_at"),
            received=get.count("received"),
            forwarded=get.count("forwarded"),
            forwarded_by_status=get.counts("forwarded_by_status"),
            rejected=get.counts("rejected"),
            recent_rejects=get.recent_rejects("recent_rejects"),
            reconnects=get.count("reconnects"),
            last_message_at=get.optional_number("last_message_at"),
            lag_seconds=get.number("lag_seconds", 0.0),
            recovered=get.count("recovered"),
            gaps=get.count("gaps"),
            primary=get.text("primary", ""),
            failovers=get.count("failovers"),
        )


_REQUIRED: Any = object()


class _Fields:
    """Typed reads of a report's fields; each mismatch says what it expected and what came."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def _get(self, key: str, default: Any) -> Any:
        if key in self.document:
            return self.document[key]
        if default is _REQUIRED:
            keys = loggable(sorted(self.document))
            raise MalformedReport(f"expected a bridge report with {key!r}, got keys {keys}")
        return default

    def _wrong(self, key: str, expected: str, value: object) -> MalformedReport:
        return MalformedReport(
            f"expected {key!r} of a bridge report to be {expected}, got {loggable(value)}"
        )

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._wrong(key, "a str", value)
        return value

    def count(self, key: str) -> int:
        value = self._get(key, 0)
        if not _is_int(value):
            raise self._wrong(key, "an int", value)
        return int(value)

    def number(self, key: str, default: Any = _REQUIRED) -> float:
        value = self._get(key, default)
        if not _is_number(value):
            raise self._wrong(key, "a number", value)
        return float(value)

    def optional_number(self, key: str) -> float | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not _is_number(value):
            raise self._wrong(key, "a number or null", value)
        return float(value)

    def counts(self, key: str) -> dict[str, int]:
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(_is_int(v) for v in value.values()):
            raise self._wrong(key, "an object of ints", value)
        return {str(k): int(v) for k, v in value.items()}

    def recent_rejects(self, key: str) -> tuple[RecentReject, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(item, dict)
            and _is_number(item.get("at"))
            and isinstance(item.get("reason"), str)
            for item in value
        ):
            raise self._wrong(key, 'a list of {"at": number, "reason": str}', value)
        return tuple(RecentReject(float(item["at"]), item["reason"]) for item in value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
