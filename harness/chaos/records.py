"""What a chaos run records, and what the checker reads: pure data, no I/O.

Every time is a ``time.monotonic()`` reading of the run's one process, so the
publishers' threads, the clients' event loop and the nemesis's thread share a
clock.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

PUBLISHERS = ("pub", "xadd")
"""The two publishers: their names are the ``job_id`` of every update they send."""

POSITION = re.compile(r"(\d+)-(\d+)")

WELCOME, UPDATE, RESET, ERROR, OTHER = range(5)
KINDS = ("welcome", "job_update", "reset", "error", "other")
"""A frame's kind, by its code in :class:`ClientLog`."""


def parse_position(text: object) -> tuple[int, int] | None:
    """``"<ms>-<seq>"`` as two integers; None for anything else."""
    if not isinstance(text, str):
        return None
    match = POSITION.fullmatch(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True, slots=True)
class Update:
    """One update a publisher sent: ``(publisher, n)`` identifies it.

    Attributes:
        n: Its sequence number (``data.n``), 0, 1, 2, ... per publisher.
        sent: When the call (PUBLISH or XADD) began.
        replied: When it returned or raised.
        accepted: PUBLISH returned >= 1, or XADD returned an id. Not accepted
            (0 receivers, or an exception) may still have been applied.
    """

    n: int
    sent: float
    replied: float
    accepted: bool


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault of the nemesis: ``kind`` from ``start`` until healed at ``end``."""

    kind: str
    start: float
    end: float
    target: str = ""
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Frame:
    """One message a client received, as the checker reads it.

    Attributes:
        t: When the client read it.
        conn: The number of the client's connection it came on (1, 2, ...).
        kind: ``welcome``, ``job_update``, ``reset``, ``error`` or ``other``.
        publisher: A ``job_update``'s publisher (its ``job_id``) if it is one of
            :data:`PUBLISHERS`, else None.
        n: A ``job_update``'s ``data.n``, else None.
        position: A ``job_update``'s (or a ``reset``'s) position as two integers.
        detail: A ``reset``'s reason, an ``error``'s code, another message's type.
    """

    t: float
    conn: int
    kind: str
    publisher: str | None = None
    n: int | None = None
    position: tuple[int, int] | None = None
    detail: str | None = None


@dataclass(slots=True)
class Connection:
    """One connection attempt of a logical client.

    Attributes:
        no: Its number among the client's attempts (1, 2, ...).
        port: The server it went to.
        since: The ``since=`` it resumed from, if any.
        started: When the attempt began.
        opened: When the WebSocket handshake completed, if it did.
        welcomed: When its ``welcome`` arrived, if one did.
        closed: When it ended (closed, failed or given up at the end of the run).
        code: Its close code (1006 when no close frame came), if it opened.
        error: Why it failed to open, or ended other than by a close.
    """

    no: int
    port: int
    since: str | None
    started: float
    opened: float | None = None
    welcomed: float | None = None
    closed: float | None = None
    code: int | None = None
    error: str | None = None


@dataclass
class ClientLog:
    """One logical client's whole run: its frames, connections and disconnections.

    Frames are kept in columns (a few dozen bytes each) so that a long run's
    millions of them fit; :meth:`frames` reads them back as :class:`Frame`.
    """

    name: str
    connections: list[Connection] = field(default_factory=list)
    disconnected: list[tuple[float, float]] = field(default_factory=list)
    """Every interval from the end of a welcomed connection to the next welcome."""
    _t: array[float] = field(default_factory=lambda: array("d"))
    _conn: array[int] = field(default_factory=lambda: array("l"))
    _kind: array[int] = field(default_factory=lambda: array("b"))
    _publisher: array[int] = field(default_factory=lambda: array("b"))
    _n: array[int] = field(default_factory=lambda: array("q"))
    _ms: array[int] = field(default_factory=lambda: array("q"))
    _seq: array[int] = field(default_factory=lambda: array("q"))
    _detail: dict[int, str] = field(default_factory=dict)

    def add(self, frame: Frame) -> None:
        """Append one frame."""
        if frame.detail is not None:
            self._detail[len(self._t)] = frame.detail
        self._t.append(frame.t)
        self._conn.append(frame.conn)
        self._kind.append(KINDS.index(frame.kind))
        publisher = frame.publisher
        self._publisher.append(PUBLISHERS.index(publisher) if publisher in PUBLISHERS else -1)
        self._n.append(-1 if frame.n is None else frame.n)
        ms, seq = frame.position if frame.position is not None else (-1, -1)
        self._ms.append(ms)
        self._seq.append(seq)

    def __len__(self) -> int:
        return len(self._t)

    def frames(self) -> Iterator[Frame]:
        """Every frame, in the order the client read them."""
        for i in range(len(self._t)):
            publisher = self._publisher[i]
            n = self._n[i]
            kind = self._kind[i]
            yield Frame(
                t=self._t[i],
                conn=self._conn[i],
                kind=KINDS[kind],
                publisher=PUBLISHERS[publisher] if publisher >= 0 else None,
                n=n if kind == UPDATE and n >= 0 else None,
                position=(self._ms[i], self._seq[i]) if self._ms[i] >= 0 else None,
                detail=self._detail.get(i),
            )
