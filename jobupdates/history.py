"""The bounded history of job updates and each job's latest state, in Redis.

The bridge records each batch of valid updates with :meth:`History.append_many`:
one script call that, atomically, adds each update to a Redis Stream (its entry
ID becomes the update's *position*) and stores the job's latest state with a
TTL, then trims the stream by size and age.
Consumers read it back to replay what a reconnecting client missed
(:meth:`History.pages`, a page at a time) and to send a job's current state on
subscribe (:meth:`History.states`).

Reads are paged so that a replay holds little in memory at once: a page holds
about :data:`PAGE_BYTES` of entries, and the reader stops asking for pages
as soon as its client stops keeping up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from jobupdates.history_script import APPEND, FENCED
from jobupdates.protocol.frames import gap_frame
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.positions import (
    Position,
    PositionError,
    ResetReason,
    plan_recovery,
    with_position,
)

__all__ = [
    "FIRST_PAGE",
    "MAX_PAGE",
    "PAGE_BYTES",
    "Appended",
    "Fence",
    "History",
    "Recovery",
    "ReplayEntry",
]

logger = logging.getLogger(__name__)

FIRST_PAGE = 1
"""Entries in the first page of a replay, before their size is known: one, so that a
replay of large updates holds one in flight, not several (each up to
``JOBUPDATES_MAX_PAYLOAD_BYTES``, with its copies on the way to the socket)."""
MAX_PAGE = 256
"""The most entries in one page."""
PAGE_BYTES = 256 * 1024
"""About how many bytes of entries one page holds (from the sizes seen so far)."""


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """One update to replay: its position, job and client frame (with ``position``).

    A recorded gap is an entry too (``gap``): its frame is the ``reset`` every
    connection gets there, and its ``job_id`` is empty.
    """

    position: Position
    job_id: str
    frame: str
    gap: bool = False


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write requires: ``key`` must hold ``value`` (the writer's token)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Appended:
    """What :meth:`History.append_many` recorded.

    Attributes:
        fenced: Whether the write was refused (nothing recorded): the caller's lease
            is no longer the one in Redis.
        prev: The position recorded just before the batch (``"0-0"`` for none).
        gap: The position of the gap recorded before the batch, if one was.
        positions: The updates' positions, in order.
    """

    fenced: bool = False
    prev: str = "0-0"
    gap: str | None = None
    positions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a client resuming from a position gets: a reset, or the entries after it.

    Attributes:
        reset: Why the entries after the position cannot all be replayed, if so.
        entries: The entries after the position, oldest first (none on a reset).
        oldest: The oldest entry the history holds, if any.
    """

    reset: ResetReason | None
    entries: tuple[ReplayEntry, ...] = ()
    oldest: Position | None = None


class History:
    """Reads and writes the history stream and the per-job state keys."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        stream_key: str,
        state_prefix: str,
        max_entries: int,
        max_age_seconds: float,
        state_ttl_seconds: int,
    ) -> None:
        """Args:
        client: The Redis to use.
        stream_key: The key of the history stream.
        state_prefix: Prefix of the per-job state keys (the job id follows).
        max_entries: How many entries the stream keeps (at least; trimming is approximate).
        max_age_seconds: How long an entry stays (at least); 0 keeps them until trimmed by size.
        state_ttl_seconds: How long a job's latest state is kept after its last update.
        """
        self.client = client
        self.stream_key = stream_key
        self.lost_key = stream_key + ":lost"
        """Holds the newest position Redis is known to have lost (:meth:`append_many`)."""
        self.batch_key = stream_key + ":batch"
        """Holds the last batch recorded: its ID and positions (:meth:`append_many`)."""
        self.state_prefix = state_prefix
        self.max_entries = max_entries
        self.max_age_ms = int(max_age_seconds * 1000)
        self.state_ttl_seconds = state_ttl_seconds
        self._append = client.register_script(APPEND)

    @classmethod
    def from_conf(cls, client: aioredis.Redis) -> History:
        """The history named by the ``JOBUPDATES_HISTORY_*`` and ``STATE_*`` settings."""
        from jobupdates.conf import conf

        return cls(
            client,
            stream_key=conf.HISTORY_KEY,
            state_prefix=conf.STATE_PREFIX,
            max_entries=conf.HISTORY_SIZE,
            max_age_seconds=conf.HISTORY_MAX_AGE,
            state_ttl_seconds=conf.STATE_TTL,
        )

    async def append_many(
        self,
        updates: Sequence[tuple[str, str]],
        ingest_ids: Sequence[str] | None = None,
        digests: Sequence[str] | None = None,
        *,
        after: str | None = None,
        fence: Fence | None = None,
        batch_id: str = "",
        gap: str = "",
    ) -> Appended:
        """Record ``(job_id, frame)`` updates in order, in one script call (all or none).

        ``ingest_ids``, one per update, are the entry IDs in the durable ingest
        stream the updates came from; each is kept with its entry (field ``i``,
        never sent to clients) so that :meth:`ingested_since` can tell which
        were recorded. ``digests``, one per update, identify the raw PUBLISHed
        payloads (field ``d``, never sent to clients): a standby aligns its ring
        with them on a takeover (:meth:`published_since`).

        ``after`` is the position the caller recorded last. If the history's
        newest is older (Redis lost its newest writes: a failover to a replica
        that missed them, a restart without persistence), the loss is recorded
        (:attr:`lost_key`, logged): clients that resume from a position before
        ``after`` get a reset instead of a replay with a hole.

        With ``fence``, nothing is written unless Redis still holds the caller's
        lease (:attr:`Appended.fenced`): a bridge deposed while it was frozen
        cannot record behind its successor. ``batch_id`` (unique per batch, no
        spaces) makes a retry idempotent: a batch already recorded last is
        answered with its positions, not recorded twice. ``gap`` records a gap,
        with that reason, before the batch (field ``g``).
        """
        if not updates and not gap:
            return Appended()
        ids = ingest_ids if ingest_ids is not None else [""] * len(updates)
        marks = digests if digests is not None else [""] * len(updates)
        keys = [self.stream_key]
        args: list[str | int] = [
            self.max_entries,
            self.max_age_ms,
            self.state_ttl_seconds,
            after or "",
            fence.value if fence else "",
            batch_id or uuid.uuid4().hex,
            gap,
        ]
        for (job_id, frame), ingest_id, mark in zip(updates, ids, marks, strict=True):
            keys.append(self.state_prefix + job_id)
            args += (job_id, frame, ingest_id, mark)
        keys += [self.lost_key, self.batch_key, fence.key if fence else self.batch_key]
        status, *rest = await self._append(keys=keys, args=args)
        if _text(status) == FENCED:
            return Appended(fenced=True)
        lost, prev, gap_at, *positions = (_text(value) for value in rest)
        if lost:
            logger.warning(
                "history: Redis lost updates up to %s (its newest was %s); clients that "
                "resume from before it get a reset (position_lost)",
                after,
                lost,
            )
        return Appended(prev=prev, gap=gap_at or None, positions=tuple(positions))

    async def ingested_since(self, oldest: str, *, page: int = 1000) -> set[str]:
        """Return the ingest entry IDs recorded with the entries from ``oldest`` on.

        An update is recorded after it was added to the ingest stream, and both
        streams take their IDs from the same Redis clock, so every update that
        came from ingest entry ``oldest`` or later is at or after its time here.
        """
        found: set[str] = set()
        start = oldest.split("-")[0]
        while True:
            entries: list[Any] = list(
                await self.client.xrange(self.stream_key, start, "+", count=page) or []
            )
            found.update(_text(fields[b"i"]) for _, fields in entries if b"i" in fields)
            if len(entries) < page:
                return found
            start = "(" + _text(entries[-1][0])

    async def published_since(self, ms: int, *, page: int = 1000) -> list[str]:
        """Return the payload digests of the PUBLISHed updates recorded from Unix time
        ``ms`` (milliseconds) on, oldest first, after the last gap recorded there.

        Durable ingest's entries (no digest) are left out; a gap (field ``g``)
        starts the list again: what came before it is not contiguous with what
        follows.
        """
        digests: list[str] = []
        start = str(max(0, ms))
        while True:
            entries: list[Any] = list(
                await self.client.xrange(self.stream_key, start, "+", count=page) or []
            )
            for _, fields in entries:
                if b"g" in fields:
                    digests.clear()
                elif b"d" in fields:
                    digests.append(_text(fields[b"d"]))
            if len(entries) < page:
                return digests
            start = "(" + _text(entries[-1][0])

    async def since(
        self, since: Position | None, *, count: int | None = None, seen: bool = False
    ) -> Recovery:
        """Return the entries after ``since`` (at most ``count``), or why they cannot all
        be replayed; with ``since`` None, the entries from the oldest one held on
        (never a reset: nothing is claimed about what came before). One round trip.

        With ``seen``, ``since`` is an update a client saw, so the history must
        still hold it (:func:`~jobupdates.protocol.positions.plan_recovery`).
        """
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xrange(self.stream_key, "-", "+", count=1)
            pipe.xrevrange(self.stream_key, "+", "-", count=1)
            pipe.xrange(self.stream_key, "-" if since is None else f"({since}", "+", count=count)
            if seen and since is not None:
                pipe.xrange(self.stream_key, str(since), str(since))
                pipe.get(self.lost_key)
            oldest, newest, after, *checks = await pipe.execute()
        first = _first_id(oldest)
        held = bool(checks[0]) if checks else True
        lost = self._lost(checks[1]) if checks else None
        reset = (
            None
            if since is None
            else plan_recovery(since, first, _first_id(newest), held=held, lost=lost)
        )
        if reset is not None:
            return Recovery(reset, oldest=first)
        entries = tuple(_entry(entry_id, fields) for entry_id, fields in after)
        return Recovery(None, entries, oldest=first)

    def _lost(self, value: bytes | str | None) -> Position | None:
        """The lost key's position; one that does not parse (not written by a bridge)
        is logged and taken as no loss rather than failing every resume."""
        if not value:
            return None
        try:
            return Position.parse(value)
        except PositionError:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            logger.warning(
                "history: %s holds %s, not a position; ignored", self.lost_key, loggable(text)
            )
            return None

    async def pages(
        self, since: Position | None, *, seen: bool = False
    ) -> AsyncGenerator[Recovery, None]:
        """Yield the entries after ``since`` (None: from the oldest held) a page at a
        time, oldest first; ``seen`` as in :meth:`since`.

        Each page is checked as :meth:`since` checks the first: if the history
        was trimmed past the last entry read (or lost), the last page yielded
        is a reset. Stop iterating (``aclosing``) to stop reading.
        """
        count = FIRST_PAGE
        while True:
            page = await self.since(since, count=count, seen=seen)
            seen = False  # the next pages start after an entry just read
            yield page
            if page.reset is not None or len(page.entries) < count:
                return
            since = page.entries[-1].position
            size = sum(len(entry.frame) for entry in page.entries) // len(page.entries)
            count = max(1, min(MAX_PAGE, PAGE_BYTES // max(1, size)))

    async def bounds(self) -> tuple[Position | None, Position | None]:
        """The oldest and newest positions the history holds (None if it is empty)."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.xrange(self.stream_key, "-", "+", count=1)
            pipe.xrevrange(self.stream_key, "+", "-", count=1)
            oldest, newest = await pipe.execute()
        return _first_id(oldest), _first_id(newest)

    async def states(self, job_ids: Iterable[str]) -> list[ReplayEntry]:
        """Return the latest update (a ``job_update`` frame with its position) of each
        known job, in the order asked."""
        wanted = list(job_ids)
        if not wanted:
            return []
        values = await self.client.mget([self.state_prefix + job_id for job_id in wanted])
        states = []
        for job_id, value in zip(wanted, values, strict=True):
            if value is not None:
                position, _, frame = _text(value).partition(" ")
                states.append(
                    ReplayEntry(Position.parse(position), job_id, with_position(frame, position))
                )
        return states


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _first_id(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> Position | None:
    return Position.parse(entries[0][0]) if entries else None


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> ReplayEntry:
    position = entry_id.decode()
    why = fields.get(b"g")
    if why is not None:
        return ReplayEntry(
            Position.parse(position), "", gap_frame(why.decode(), position), gap=True
        )
    return ReplayEntry(
        Position.parse(position),
        fields[b"j"].decode(),
        with_position(fields[b"f"].decode(), position),
    )
