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
bridge never recorded. When the alignment cannot tell, it forwards nothing
twice and says so (:attr:`Alignment.gap`): never silent.
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
        gap: Whether updates may be missing between the history and the ring:
            record the gap (every client whose stream crosses it gets a ``reset``).
        why: What the gap is (empty without one).
    """

    start: int
    overlap: int
    gap: bool = False
    why: str = ""


def align(ring: Sequence[str], tail: Sequence[str], *, covered: bool = False) -> Alignment:
    """Align the ring's digests with the history tail's digests (both oldest first).

    ``tail`` holds the digests of the updates PUBLISHed and recorded since a little
    before the ring's first entry, after the last gap the history recorded: with
    one recorder at a time (the lease's fencing), they are a run of the channel's
    messages in order, as the ring is. So the ring's entries from the largest
    ``j`` such that ``ring[max(0, j - t):j]`` equals the last ``t`` digests of
    ``tail`` (``t = min(j, len(tail))``) on are exactly those never recorded.

    It never forwards an entry twice, and says when it cannot tell (a gap):

    * a smaller ``j`` matches too (identical payloads in a row): the largest is
      taken, and a gap is reported, since one of them may be lost;
    * no ``j`` matches but the tail holds some ring entries (the old recorder
      missed one of them): the ring is forwarded after the last of those, with a gap;
    * nothing in the ring was recorded: the ring is forwarded whole, with a gap
      unless ``covered``.

    Args:
        ring: The ring's digests, oldest first.
        tail: The digests of the history's newest PUBLISHed entries, oldest first.
        covered: Whether what was published before the ring's first entry is known
            to be recorded: the old holder released its lease on a graceful stop, or
            had nothing in hand since before this bridge subscribed, or there was none.
    """
    if tail:
        j, ambiguous = _largest_match(list(ring), list(tail))
        if j:
            why = (
                f"{j} buffered update(s) match the history's newest at more than one place "
                "(identical payloads in a row): one of them may be lost"
                if ambiguous
                else ""
            )
            return Alignment(start=j, overlap=min(j, len(tail)), gap=ambiguous, why=why)
        recorded = set(tail)
        seen = max((i for i, mark in enumerate(ring) if mark in recorded), default=-1)
        if seen >= 0:
            return Alignment(
                start=seen + 1,
                overlap=0,
                gap=True,
                why=f"the history skipped buffered update(s) before the {seen + 1}th, "
                "which it holds",
            )
    if covered:
        return Alignment(start=0, overlap=0)
    return Alignment(
        start=0,
        overlap=0,
        gap=True,
        why=f"none of the {len(ring)} buffered update(s) matches the history's newest, and "
        "the old bridge may have held updates published before this one subscribed",
    )


def _largest_match(ring: list[str], tail: list[str]) -> tuple[int, bool]:
    """The largest ``j`` of :func:`align` (0 if none), in linear time, and whether a
    smaller ``j`` matches too."""
    found: list[int] = []
    # j >= len(tail): the whole tail occurs in the ring, ending at j.
    if tail and len(ring) >= len(tail):
        haystack = "," + ",".join(ring) + ","
        needle = "," + ",".join(tail) + ","
        last = haystack.rfind(needle)
        if last >= 0:
            found.append(haystack.count(",", 0, last + 1) - 1 + len(tail))
            if haystack.find(needle) != last:
                return found[0], True
    # j < len(tail): a prefix of the ring that is a suffix of the tail (KMP); every
    # shorter one is on the failure chain of the longest.
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
    if k:
        found.append(k)
        if failure[k - 1]:
            found.append(failure[k - 1])
    return (found[0], len(found) > 1) if found else (0, False)
