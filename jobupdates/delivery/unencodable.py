"""Updates a connection's encoding cannot carry: skipped for that connection, logged once.

The bridge refuses an update holding a number JSON or MessagePack clients
cannot receive (``invalid_number``), but the history may hold one that an
older bridge recorded, and such a bridge may still be sending during an
upgrade: ``Infinity`` in its JSON text, an integer beyond 64 bits. Such an
update is skipped for the connections whose encoding cannot carry it
(:class:`~jobupdates.protocol.encodings.Unencodable`), live or in a replay,
and only for them: the stream goes on and the connection stays open. A
replay from before it would otherwise fail at the same entry every time.

Each is logged once per process and encoding (:class:`SkipLog` remembers
the last :data:`REMEMBERED`), its position, job id and reason escaped and truncated
(:func:`~jobupdates.protocol.logs.loggable`).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable

from jobupdates.protocol.encodings import Encoding, Unencodable, payload
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.wire import text_frame

__all__ = ["REMEMBERED", "UNENCODABLE", "SkipLog", "json_frame", "skip_log"]

logger = logging.getLogger(__name__)

UNENCODABLE = b""
"""Kept in a layer message in place of a frame its encoding cannot carry, so that the
check runs once per update, process and framing, whatever the number of connections."""
REMEMBERED = 256
"""Updates a process remembers having logged, per encoding, so as to log each once."""


class SkipLog:
    """Logs each update skipped for an encoding once (the last :data:`REMEMBERED`)."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self.remembered = remembered
        self._logged: dict[tuple[str, Hashable], None] = {}

    def skipped(
        self, error: Unencodable, text: str, position: str | None, job_id: str | None
    ) -> bool:
        """Log that the message (JSON ``text``) is skipped for ``error.encoding``'s
        connections, unless it was already; return whether it was logged now."""
        key = (error.encoding.value, position if position is not None else hash(text))
        if key in self._logged:
            return False
        self._logged[key] = None
        if len(self._logged) > self.remembered:
            del self._logged[next(iter(self._logged))]  # the oldest
        logger.warning(
            "skipped update %s of job %s for %s connections, which cannot carry it: %s; "
            "they get the updates after it, and the others get this one",
            loggable(position),
            loggable(job_id),
            error.encoding.value,
            loggable(error.detail),
        )
        return True


skip_log = SkipLog()
"""This process's log of skipped updates."""


def json_frame(text: str, position: str | None, job_id: str | None) -> bytes:
    """The plain text frame of a job update's JSON ``text``, built once per update and
    process (:func:`~jobupdates.delivery.fanout.job_update_send`); :data:`UNENCODABLE`
    if ``text`` is not JSON (an older bridge's ``Infinity``), logged once."""
    try:
        return text_frame(payload(text, Encoding.JSON))
    except Unencodable as exc:
        skip_log.skipped(exc, text, position, job_id)
        return UNENCODABLE
