"""The layer event: one job update on its way from the bridge to every Daphne process.

Pure: no Django, asyncio or I/O. The bridge ``group_send``\\ s
:meth:`JobUpdateEvent.to_event`; each Daphne process reads it back once with
:meth:`JobUpdateEvent.from_event`, which raises :class:`MalformedEvent` (saying
what it expected and what came) for an event no job update could come from. It
is a channel-layer message, so ``type`` names the consumer's handler.

Each recorded event also names the position recorded just before it
(``prev``: the history's previous entry, whichever bridge or input wrote it),
so a server process that missed one (a bridge died between recording and
sending, a lost layer message) can tell, and fill the gap from the history
(:mod:`jobupdates.protocol.sequence`). A *gap* event is not an update: the
bridges recorded that updates were lost at its position, and its ``text`` is
the ``reset`` frame every connection gets there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobupdates.protocol.logs import loggable

__all__ = ["JOB_UPDATE_EVENT", "RECEIVED_AT", "JobUpdateEvent", "MalformedEvent"]

JOB_UPDATE_EVENT = "job.update"
"""Channel-layer event type of a job update; its ``text`` is the client message."""
RECEIVED_AT = "received_at"
"""Key of the event's optional receipt time: when the bridge received the update (Unix time)."""


class MalformedEvent(ValueError):
    """A job-update event without what a job update needs; it is dropped."""


@dataclass(frozen=True, slots=True)
class JobUpdateEvent:
    """One job update, as the channel layer carries it.

    Attributes:
        text: The client message (JSON text), with its position if it has one.
        job_id: The job, for the feeds' filters.
        position: The update's position in the history; None if not recorded.
        received_at: When the bridge received it (Unix time), to time the
            delivery; None if unknown.
        prev: The position recorded just before this one (``"0-0"`` for the
            first); None if unknown (not recorded, or an older bridge).
        gap: Whether this is a recorded gap, not an update: ``text`` is a
            ``reset`` frame for every connection, whatever its jobs.
    """

    text: str
    job_id: str | None = None
    position: str | None = None
    received_at: float | None = None
    prev: str | None = None
    gap: bool = False

    def to_event(self) -> dict[str, Any]:
        """Return the channel-layer message (what the bridge ``group_send``\\ s)."""
        return {
            "type": JOB_UPDATE_EVENT,
            "text": self.text,
            "job_id": self.job_id,
            "position": self.position,
            RECEIVED_AT: self.received_at,
            "prev": self.prev,
            "gap": self.gap,
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> JobUpdateEvent:
        """Read a channel-layer message back; keys it does not know are ignored.

        A ``received_at`` that is not a positive number is taken as absent: it
        only times the delivery, so it never costs a client its update.

        Raises:
            MalformedEvent: If ``type`` is not :data:`JOB_UPDATE_EVENT`, ``text``
                is missing or not a str, ``job_id``, ``position`` or ``prev`` is
                neither a str nor absent, or ``gap`` is neither a bool nor absent.
        """
        kind = event.get("type")
        if kind != JOB_UPDATE_EVENT:
            raise MalformedEvent(
                f"expected a {JOB_UPDATE_EVENT!r} event, got type {loggable(kind)}"
            )
        text = event.get("text")
        if not isinstance(text, str):
            got = (
                f"'text' = {loggable(text)}" if "text" in event else f"keys {loggable(list(event))}"
            )
            raise MalformedEvent(
                f"expected a {JOB_UPDATE_EVENT!r} event with a str 'text', got {got}"
            )
        job_id = event.get("job_id")
        if job_id is not None and not isinstance(job_id, str):
            raise _not_a_str("job_id", job_id)
        position = event.get("position")
        if position is not None and not isinstance(position, str):
            raise _not_a_str("position", position)
        prev = event.get("prev")
        if prev is not None and not isinstance(prev, str):
            raise _not_a_str("prev", prev)
        gap = event.get("gap", False)
        if type(gap) is not bool:
            raise MalformedEvent(
                f"expected 'gap' of a {JOB_UPDATE_EVENT!r} event to be a bool or absent,"
                f" got {loggable(gap)}"
            )
        received_at = event.get(RECEIVED_AT)
        if type(received_at) is not float or not received_at > 0:  # the bridge sends floats
            received_at = _time_or_none(received_at)
        return cls(text, job_id, position, received_at, prev, gap)


def _not_a_str(key: str, value: object) -> MalformedEvent:
    return MalformedEvent(
        f"expected {key!r} of a {JOB_UPDATE_EVENT!r} event to be a str or absent,"
        f" got {loggable(value)}"
    )


def _time_or_none(value: object) -> float | None:
    """``value`` as a positive Unix time, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
