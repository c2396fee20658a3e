"""The standby ring and its alignment with the history's tail, on a takeover.

Pure: no Django, asyncio, Redis or I/O. Every bridge stays subscribed to the
workers' channel, and Redis delivers one channel's messages to every
subscriber in the same order. So a bridge keeps a bounded :class:`Ring` of
the valid messages it received (a :func:`digest` of each raw payload, the
parsed update while it is a standby, the receipt time), and the active bridge
records each update's digest with its history entry (field ``d``). On
becoming active, a bridge reads the history's tail and :func:`align`\\ s: the
longest recorded prefix of its ring is found on the *sequence* of digests
(the same payload twice counts twice), and the rest is what the old active
bridge never recorded. If the ring does not reach back to the history's
newest entry, the alignment says so (:attr:`Alignment.gap`): never silent.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DIGEST_BYTES", "Alignment", "Ring", "RingEntry", "align", "digest"]

T = TypeVar("T")

DIGEST_BYTES = 12
"""Bytes of blake2b in a digest (24 hex characters)."""


def digest(payload: bytes) -> str:
    """Return the hex digest that identifies a raw payload in the history (field ``d``)."""
    return hashlib.blake2b(payload, digest_size=DIGEST_BYTES).hexdigest()


@dataclass(frozen=True, slots=True)
class RingEntry(Generic[T]):
    """One valid message received: its digest, what to forward (None once recorded), when."""

    digest: str
    item: T | None
    at: float


class Ring(Generic[T]):
    """The valid messages a bridge received lately, oldest first, bounded in age and count.

    The newest entry is never dropped for its age: on a quiet channel it is
    what aligns the ring with the history's newest entry.
    """

    def __init__(self, *, max_seconds: float, max_messages: int) -> None:
        """Args:
        max_seconds: How long an entry stays (the newest stays anyway).
        max_messages: How many entries the ring holds at most.
        """
        self.max_seconds = max_seconds
        self.max_messages = max(1, max_messages)
        self.entries: collections.deque[RingEntry[T]] = collections.deque()
        self.since: float | None = None
        """When the ring started receiving without a break (its subscription)."""
        self.dropped = 0
        """Entries dropped for age or count since :meth:`restart`."""

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[RingEntry[T]]:
        return iter(self.entries)

    def restart(self, now: float) -> None:
        """Forget everything: the bridge (re)subscribed at ``now`` and may have missed some."""
        self.entries.clear()
        self.since = now
        self.dropped = 0

    def add(self, digest_: str, item: T | None, at: float) -> None:
        """Append one message received at ``at``; drop the oldest beyond the bounds."""
        self.entries.append(RingEntry(digest_, item, at))
        self.trim(at)

    def trim(self, now: float) -> None:
        """Drop entries older than ``max_seconds`` (but not the newest) and beyond the count."""
        entries = self.entries
        while len(entries) > self.max_messages:
            entries.popleft()
            self.dropped += 1
        oldest = now - self.max_seconds
        while len(entries) > 1 and entries[0].at < oldest:
            entries.popleft()
            self.dropped += 1

    def mark_recorded(self) -> None:
        """Keep only the digests: every entry is in the history now."""
        self.entries = collections.deque(
            RingEntry(entry.digest, None, entry.at) for entry in self.entries
        )


@dataclass(frozen=True, slots=True)
class Alignment:
    """Where a ring meets the history's tail.

    Attributes:
        start: The index of the ring's first entry that the history lacks:
            forward ``ring[start:]``, in order.
        overlap: How many ring entries matched the tail's newest digests.
        gap: Whether updates may be missing between the history and the ring.
        why: What the gap is (empty without one).
    """

    start: int
    overlap: int
    gap: bool = False
    why: str = ""


def align(
    ring: Sequence[str],
    tail: Sequence[str],
    *,
    since: float | None = None,
    newest_at: float | None = None,
) -> Alignment:
    """Align the ring's digests with the history tail's digests (both oldest first).

    Finds the largest ``j`` such that ``ring[max(0, j - t):j]`` equals the last
    ``t`` digests of ``tail`` (``t = min(j, len(tail))``), so that the
    entries from ``j`` on are exactly those never recorded.

    Args:
        ring: The ring's digests, oldest first.
        tail: The digests of the history's newest entries, oldest first.
        since: When the ring started receiving without a break.
        newest_at: When the history's newest entry (of ``tail``) was recorded.

    A gap is reported when the tail is not empty and no ring entry matches it:
    the ring (its oldest entry, or the subscription it started with) is newer
    than the history's newest entry, so what was published between may be lost.
    """
    if not tail:
        return Alignment(start=0, overlap=0)
    j = _largest_match(list(ring), list(tail))
    if j:
        return Alignment(start=j, overlap=min(j, len(tail)))
    if ring:
        return Alignment(
            start=0,
            overlap=0,
            gap=True,
            why=f"none of the {len(ring)} buffered update(s) matches the history's newest entry",
        )
    if since is not None and newest_at is not None and since > newest_at:
        return Alignment(
            start=0,
            overlap=0,
            gap=True,
            why="this bridge subscribed after the history's newest entry was recorded",
        )
    return Alignment(start=0, overlap=0)


def _largest_match(ring: list[str], tail: list[str]) -> int:
    """The largest ``j`` of :func:`align` (0 if none), in linear time."""
    # j >= len(tail): the whole tail occurs in the ring, ending at j (its last occurrence).
    if len(ring) >= len(tail):
        haystack = "," + ",".join(ring) + ","
        found = haystack.rfind("," + ",".join(tail) + ",")
        if found >= 0:
            return haystack.count(",", 0, found + 1) - 1 + len(tail)
    # j < len(tail): the longest prefix of the ring that is a suffix of the tail (KMP).
    pattern = ring[: len(tail) - 1]
    failure = [0] * len(pattern)
    k = 0
    for i in range(1, len(pattern)):
        while k and pattern[i] != pattern[k]:
            k = failure[k - 1]
        if pattern[i] == pattern[k]:
            k += 1
        failure[i] = k
    k = 0
    for item in tail:
        while k and (k == len(pattern) or item != pattern[k]):
            k = failure[k - 1]
        if k < len(pattern) and item == pattern[k]:
            k += 1
    return k
