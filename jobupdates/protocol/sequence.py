"""One server process's view of the history: every update once, in position order.

Pure: no Django, asyncio, Redis or I/O. The bridges record updates in the
history, then publish them on the channel layer, and each published event
names the position recorded just before it (``prev``). A :class:`Sequencer`
keeps the last position a server process handed to its connections and
decides, for each event that arrives, whether to deliver it, drop it (its
position is not newer: a copy already delivered, by a re-send or by a fill),
or first fill the gap before it from the history (an event was recorded but
never published, or its layer message was lost).

So the order every connection sees is the history's, whatever the order the
events arrive in, and the cost is one comparison per update per process,
none per connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from jobupdates.protocol.positions import Position

__all__ = ["Sequencer", "Verdict"]


class Verdict(enum.Enum):
    """What a server process does with one recorded event."""

    DELIVER = "deliver"
    """The next one: hand it to the connections."""
    DUPLICATE = "duplicate"
    """Not newer than the last one delivered: drop it."""
    FILL = "fill"
    """Recorded after entries this process never got: deliver those first (from the
    history, after :attr:`Sequencer.last` up to the event's ``prev``), then it."""


@dataclass(slots=True)
class Sequencer:
    """The last position one server process delivered, and the verdict on the next.

    Attributes:
        last: The newest position delivered (or known to be in the history when the
            process subscribed); None while unknown, when the first event sets it.
    """

    last: Position | None = None

    def admit(self, position: Position, prev: Position | None) -> Verdict:
        """Decide what to do with an event recorded at ``position`` after ``prev``.

        A ``prev`` older than :attr:`last` is not a gap: the history lost its newest
        entries (a restart without persistence, a failover), which the process had
        already delivered; the event is newer, so it is delivered.
        """
        last = self.last
        if last is None:
            return Verdict.DELIVER
        if position <= last:
            return Verdict.DUPLICATE
        if prev is not None and prev > last:
            return Verdict.FILL
        return Verdict.DELIVER

    def delivered(self, position: Position) -> None:
        """Record that ``position`` was handed to the connections."""
        if self.last is None or position > self.last:
            self.last = position
