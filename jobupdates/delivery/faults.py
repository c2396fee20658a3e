"""What the channel layer's receive loop does with a message it cannot deliver.

The loop never stops for one message (see :mod:`jobupdates.delivery.layers`): it
drops the message, or detaches the sink that raised, and hands the fault
here. Each fault is counted in ``jobupdates_layer_errors_total{reason}``
and logged at WARNING, throttled per reason by a
:class:`~jobupdates.ingest.rejections.LogThrottle` (a burst of :data:`LOG_BURST`
lines, then :data:`LOG_RATE` per second); the faults not logged one by one
are summed up in one line per reason at most every :data:`SUMMARY_SECONDS`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from typing import Any

from jobupdates.ingest.rejections import LogThrottle
from jobupdates.monitoring.metrics import LAYER_ERRORS
from jobupdates.protocol.logs import loggable

__all__ = ["LOG_BURST", "LOG_RATE", "SUMMARY_SECONDS", "Fault", "LayerFaults"]

LOG_BURST = 5
"""Lines logged at once per reason before throttling starts."""
LOG_RATE = 0.2
"""Lines logged per second and reason, on average, once the burst is spent."""
SUMMARY_SECONDS = 10.0
"""Longest time a fault that was not logged waits to be summed up in a line."""


class Fault(enum.StrEnum):
    """Why the layer dropped a message or detached a sink (the metric's ``reason``)."""

    UNDECODABLE = "undecodable"
    """Bytes on a group's channel that are not a layer message."""
    MALFORMED_EVENT = "malformed_event"
    """A message without a str ``type``, or a job update without what it needs."""
    SINK_FAILED = "sink_failed"
    """A connection's sink raised; it was detached and its consumer asked to close."""
    UNEXPECTED = "unexpected"
    """Any other error in the receive loop (a bug): logged with its traceback."""


for _fault in Fault:
    LAYER_ERRORS.labels(_fault.value)  # every series exists from the start, at 0


class LayerFaults:
    """Counts each fault and logs it, throttled per reason."""

    def __init__(
        self,
        log: logging.Logger,
        *,
        clock: Callable[[], float] = time.monotonic,
        burst: int = LOG_BURST,
        rate: float = LOG_RATE,
        summary_seconds: float = SUMMARY_SECONDS,
    ) -> None:
        """Args:
        log: Where the lines go (the layer's logger).
        clock: Monotonic seconds (injected by tests).
        burst: Lines per reason before throttling starts.
        rate: Lines per reason and second after that.
        summary_seconds: How often, at most, the faults not logged are summed up.
        """
        self.log = log
        self.clock = clock
        self._throttles = {
            fault: LogThrottle(rate=rate, burst=burst, summary_seconds=summary_seconds)
            for fault in Fault
        }
        self.pending = False
        """Whether some fault was not logged yet and awaits its summary line."""

    def decode_event(
        self, data: bytes, deserialize: Callable[[bytes], Any], channel: str, on: str = "on"
    ) -> dict[str, Any] | None:
        """The layer event in ``data``; None, with the reason recorded, if it does not
        decode or is not a dict with a str ``type`` (the reason names ``channel``,
        after ``on``)."""
        try:
            event = deserialize(data)
        except Exception as exc:
            where = f"{on} {channel!r}"
            detail = f"expected a layer message {where}, got {loggable(data)} ({loggable(exc)})"
            self.record(Fault.UNDECODABLE, detail)
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            detail = f"expected a dict with a str 'type' {on} {channel!r}, got {loggable(event)}"
            self.record(Fault.MALFORMED_EVENT, detail)
            return None
        return event

    def record(self, fault: Fault, detail: str, exc: BaseException | None = None) -> None:
        """Count one fault, and log it unless its reason is throttled.

        Args:
            fault: The reason.
            detail: What was expected and what came (outside values through ``loggable``).
            exc: The exception, for a traceback (for faults that are bugs, not input).
        """
        LAYER_ERRORS.labels(fault.value).inc()
        now = self.clock()
        if self._throttles[fault].admit(fault.value, now):
            self.log.warning(
                "channel layer dropped a message: %s: %s", fault.value, detail, exc_info=exc
            )
        else:
            self.pending = True
        self.summarize()

    def summarize(self, *, force: bool = False) -> None:
        """Log, per reason, the faults not logged one by one, once due (or now if ``force``)."""
        if not self.pending:
            return
        now = self.clock()
        self.pending = False
        for fault, throttle in self._throttles.items():
            summary = throttle.summary(now, force=force)
            if summary is not None:
                self.log.warning(
                    "channel layer: %d more %s fault(s) in the last %.1fs not logged one by one;"
                    " all are counted in jobupdates_layer_errors_total",
                    sum(summary[0].values()),
                    fault.value,
                    summary[1],
                )
            elif throttle.since is not None:
                self.pending = True
