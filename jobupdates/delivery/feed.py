"""What one connection receives: filtering, replay, and the switch to live updates.

A :class:`Feed` is the sink the channel layer writes a connection's job
updates to (see :mod:`jobupdates.delivery.layers`). It filters by the connection's
job subscriptions, and implements "subscribe first, then replay, then drop
live duplicates": while the consumer replays history, live updates are held
back; :meth:`Feed.go_live` then sends those the replay did not already cover,
in order. It has no Django imports and does no Redis I/O.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from jobupdates.delivery.unencodable import UNENCODABLE, skip_log
from jobupdates.history import ReplayEntry
from jobupdates.monitoring.metrics import FRAMES_BUILT
from jobupdates.protocol.encodings import Encoding, Unencodable, asgi_send, payload
from jobupdates.protocol.frames import reset_frame
from jobupdates.protocol.positions import Position, PositionError, ResetReason, as_state
from jobupdates.protocol.wire import Framing

__all__ = ["Feed", "Send", "framed", "framing_label"]

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""An ASGI ``send``."""


def framing_label(framing: Framing) -> str:
    """``framing``'s label in ``jobupdates_frames_built_total{framing}``: ``json``,
    ``json+deflate``, ``msgpack`` or ``msgpack+deflate``."""
    return ("msgpack" if framing.binary else "json") + ("+deflate" if framing.compressed else "")


_BUILT = {
    framing.key: FRAMES_BUILT.labels(framing_label(framing))
    for framing in (
        Framing(compressed=True),
        Framing(binary=True),
        Framing(binary=True, compressed=True),
    )
}
"""The counter of each framing :func:`framed` builds, every series at 0 from the start.
(The plain JSON frame comes with the layer's message: it is built for every update.)"""


def framed(message: dict[str, Any], framing: Framing) -> bytes:
    """The frame of a job update's message (:func:`~jobupdates.delivery.layers.job_update_send`)
    in ``framing``, built on first use and kept in the message, which every connection of
    the process shares: once per update, process and framing, and counted then (in
    ``jobupdates_frames_built_total``), never per connection. :data:`UNENCODABLE` (empty)
    if the framing's encoding cannot carry it (skipped, logged once)."""
    frame: bytes | None = message.get(framing.key)
    if frame is None:
        encoding = Encoding.MSGPACK if framing.binary else Encoding.JSON
        try:
            frame = framing.build(payload(message["text"], encoding))
        except Unencodable as exc:
            skip_log.skipped(exc, message["text"], message.get("position"), message.get("job_id"))
            frame = message[framing.key] = UNENCODABLE
            return frame
        message[framing.key] = frame
        built = _BUILT.get(framing.key)
        if built is None:  # plain JSON, from a message that came without its frame
            built = _BUILT[framing.key] = FRAMES_BUILT.labels(framing_label(framing))
        built.inc()
    return frame


class Feed:
    """A connection's job updates: the all-jobs feed, or the jobs it subscribed to."""

    __slots__ = (
        "_held",
        "_state_positions",
        "backlog",
        "encoding",
        "frame_key",
        "framing",
        "jobs",
        "last_replayed",
        "max_backlog",
        "max_held",
        "on_overflow",
        "overflowed",
        "position",
        "send",
        "sent",
        "write",
    )

    def __init__(
        self,
        send: Send,
        *,
        jobs: Iterable[str] | None = None,
        max_held: int = 10_000,
        write: Callable[[bytes], int] | None = None,
        backlog: Callable[[], int] | None = None,
        max_backlog: int = 1024 * 1024,
        on_overflow: Callable[[str], None] | None = None,
        encoding: Encoding = Encoding.JSON,
        compressed: bool = False,
    ) -> None:
        """Args:
        send: The connection's ASGI send.
        jobs: The jobs to receive; None for the all-jobs feed.
        max_held: How many live updates may wait while a replay runs.
        write: Writes a message's pre-built ``frame`` to the socket directly and
            returns the bytes the server still holds for it, unwritten (see
            :func:`jobupdates.delivery.daphne.frame_writer`); else ``send`` is used.
        backlog: Gives the bytes the server has not yet written to the socket.
        max_backlog: The most bytes a client may leave unread.
        on_overflow: Called once, with the reason, when either limit is passed;
            the feed sends nothing more.
        encoding: The connection's encoding (its subprotocol): every message the
            feed sends is re-encoded to it.
        compressed: Whether the connection negotiated permessage-deflate: ``write``
            gets each update's compressed frame (the ASGI ``send`` compresses itself).
        """
        self.send = send
        self.encoding = encoding
        self.framing = Framing(binary=encoding.binary, compressed=compressed)
        self.frame_key = self.framing.key
        """Where this connection's frame is in a layer message (read per delivery)."""
        self.write = write
        self.jobs: set[str] | None = None if jobs is None else set(jobs)
        self.max_held = max_held
        self.backlog = backlog
        self.max_backlog = max_backlog
        self.on_overflow = on_overflow
        self.overflowed = False
        self.sent = 0
        self.position: str | None = None
        """The position of the last update sent, live or replayed."""
        self.last_replayed: Position | None = None
        self._state_positions: dict[str, Position] = {}
        self._held: list[dict[str, Any]] | None = []

    @property
    def live(self) -> bool:
        """Whether updates go out as they arrive (the replay is over)."""
        return self._held is None

    def wants(self, job_id: str | None) -> bool:
        """Whether this connection receives updates of ``job_id``."""
        return self.jobs is None or job_id in self.jobs

    async def __call__(self, message: dict[str, Any]) -> bool:
        """Take one ``websocket.send`` message from the layer (with ``job_id``,
        ``position`` and ``gap`` alongside ``text``); return whether it was sent now.

        A gap (a ``reset`` where updates may be missing) reaches every connection,
        whatever its jobs, in stream order.
        """
        if self.overflowed:
            return False
        jobs = self.jobs
        if jobs is not None and message.get("job_id") not in jobs and not message.get("gap"):
            return False
        held = self._held
        if held is not None:
            if len(held) >= self.max_held:
                self._overflow(f"more than {self.max_held} updates arrived during a replay")
            else:
                held.append(message)
            return False
        if (self.last_replayed is not None or self._state_positions) and self._covered(message):
            return False  # recorded before the replay read it, published after: sent already
        write = self.write
        if write is not None and "frame" in message:
            frame = message.get(self.frame_key) or framed(message, self.framing)
            if not frame:  # UNENCODABLE: an older bridge's number this encoding cannot carry
                return False
            pending = write(frame)  # the hot path: inlined, as :meth:`_write` does it
            self.sent += 1
            self.position = message.get("position") or self.position
            if pending > self.max_backlog:
                self._overflow(f"{pending} bytes unread, over the limit of {self.max_backlog}")
            return True
        return await self._emit(message)

    async def _emit(self, message: dict[str, Any]) -> bool:
        """Send one layer message through the ASGI ``send``; return whether it was sent."""
        position = message.get("position")
        if not await self._write(message["text"], position, message.get("job_id")):
            return False
        if position is not None:
            self.position = position
        return True

    async def _write(self, text: str, position: str | None, job_id: str | None) -> bool:
        """Send one message (JSON ``text``) in the connection's encoding through the ASGI
        ``send``, then check the backlog bound; False if the encoding cannot carry it
        (skipped, logged once: :mod:`jobupdates.delivery.unencodable`).

        Every write but the fast path's goes through here (replay, states,
        held updates, resets), so none of them can pass the bound either.
        """
        try:
            message = asgi_send(text, self.encoding)
        except Unencodable as exc:
            skip_log.skipped(exc, text, position, job_id)
            return False
        await self.send(message)
        self.sent += 1
        self._check_backlog()
        return True

    def _check_backlog(self) -> None:
        if self.backlog is not None and (pending := self.backlog()) > self.max_backlog:
            self._overflow(f"{pending} bytes unread, over the limit of {self.max_backlog}")

    def _overflow(self, reason: str) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        if self.on_overflow is not None:
            self.on_overflow(reason)

    def hold(self) -> None:
        """Hold live updates back until :meth:`go_live` (while replaying or subscribing)."""
        if self._held is None:
            self._held = []

    async def replay(self, entries: Iterable[ReplayEntry]) -> None:
        """Send history entries in order, before the live updates held back.

        Stops at the first entry past the backlog bound (see :attr:`overflowed`).
        """
        for entry in entries:
            if self.overflowed:
                return
            if entry.gap or self.wants(entry.job_id):
                await self._send_text(entry.frame, entry)
            self.last_replayed = entry.position
            self.position = str(entry.position)

    async def send_states(self, entries: Iterable[ReplayEntry]) -> None:
        """Send each subscribed job's latest state as a ``job_state`` frame."""
        for entry in entries:
            if self.overflowed:
                return
            await self._send_text(as_state(entry.frame), entry)
            self._state_positions[entry.job_id] = entry.position

    async def go_live(self) -> None:
        """Send the updates held back, minus those the replay or a state covered."""
        held = self._held or []
        index = 0
        while index < len(held) and not self.overflowed:  # arrivals meanwhile are appended
            message = held[index]
            index += 1
            if not self._covered(message):
                await self._emit(message)
        self._held = None

    async def send_reset(self, reason: ResetReason, message: str) -> None:
        """Tell the client it missed updates it cannot get back."""
        await self._send_text(reset_frame(reason.value, message))

    async def _send_text(self, text: str, entry: ReplayEntry | None = None) -> None:
        if not self.overflowed:
            if entry is None:
                await self._write(text, None, None)
            else:
                await self._write(text, str(entry.position), entry.job_id)

    def _covered(self, message: dict[str, Any]) -> bool:
        """Whether the replay or a state already sent ``message``'s update.

        The bridge records an update before it publishes it, so a replay may
        include an update whose live copy arrives later, even after
        :meth:`go_live`. Updates arrive in position order, so the first one
        past the replay (or past a job's state) ends the check for it.
        """
        raw = message.get("position")
        if not isinstance(raw, str):
            return False
        try:
            position = Position.parse(raw)
        except PositionError:
            return False
        if self.last_replayed is not None:
            if position <= self.last_replayed:
                return True
            self.last_replayed = None
        job_id = str(message.get("job_id"))
        state = self._state_positions.get(job_id)
        if state is None:
            return False
        if position <= state:
            return True
        del self._state_positions[job_id]
        return False
