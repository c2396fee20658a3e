"""What one WebSocket client received, and the verdict on it against what Redis accepted.

The contract the fault tests hold the product to, from the client's side: every
update Redis accepted (a PUBLISH that returned >= 1, an XADD that returned an
id) reaches every connected client exactly once, in publish order, with
strictly increasing positions, unless a ``reset`` covers it. :func:`verdict`
measures a client against it and :meth:`Verdict.problems` words every breach
with its figures, so a failing test says how many were lost, duplicated or out
of order, not just that the lists differ.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

Key = tuple[str, int]
"""One update as the tests number it: its job id and its ``data["n"]``."""


def position_pair(position: str) -> tuple[int, int]:
    """``"<ms>-<seq>"`` as the pair of integers it is compared as."""
    ms, _, seq = position.partition("-")
    return int(ms), int(seq)


@dataclass(frozen=True)
class Got:
    """One ``job_update`` a client received."""

    key: Key
    position: str


class Inbox:
    """Reads every frame of one WebSocket (after its ``welcome``) in a task.

    ``updates`` keeps the ``job_update`` frames in arrival order, ``resets``
    the ``reset`` frames, with the number of updates received before each.
    """

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.updates: list[Got] = []
        self.resets: list[tuple[int, dict[str, Any]]] = []
        self.others: list[dict[str, Any]] = []
        self.pongs = 0
        self.closed: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Inbox:
        self._task = asyncio.create_task(self._read())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "job_update":
                    got = Got((frame["job_id"], int(frame["data"]["n"])), frame["position"])
                    self.updates.append(got)
                elif kind == "reset":
                    self.resets.append((len(self.updates), frame))
                elif kind == "pong":
                    self.pongs += 1
                else:
                    self.others.append(frame)
                self._changed.set()
        except ConnectionClosed as exc:
            self.closed = f"closed: {exc}"
        finally:
            self.closed = self.closed or "closed"
            self._changed.set()

    @property
    def keys(self) -> list[Key]:
        return [got.key for got in self.updates]

    def has(self, key: Key) -> bool:
        return any(got.key == key for got in self.updates)

    async def until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds after a frame (or already); False at the
        timeout or once the connection closed without it."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return condition()
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return condition()
        return True

    async def until_received(self, key: Key, timeout: float) -> bool:
        return await self.until(lambda: self.has(key), timeout)

    async def settle(self, timeout: float = 10.0) -> bool:
        """Send a ``ping`` and wait for its ``pong``: what the server process had to send
        this client before it is on the socket. False if no pong came."""
        before = self.pongs
        await self.ws.send('{"type":"ping"}')
        return await self.until(lambda: self.pongs > before, timeout)


@dataclass
class Verdict:
    """One client's updates against those Redis accepted, in publish order."""

    accepted: int
    received: int
    lost: list[Key] = field(default_factory=list)
    duplicated: dict[Key, int] = field(default_factory=dict)
    """Each update received more than once, and how many times."""
    out_of_order: list[tuple[Key, Key]] = field(default_factory=list)
    """Consecutive pairs (earlier received, later received) against publish order."""
    not_increasing: list[tuple[str, str]] = field(default_factory=list)
    """Consecutive positions that did not grow."""
    unexpected: list[Key] = field(default_factory=list)
    """Updates received that Redis did not accept (or the test did not publish)."""
    resets: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def extra_copies(self) -> int:
        return sum(count - 1 for count in self.duplicated.values())

    def problems(self, *, resets_allowed: bool = False) -> list[str]:
        """Every breach of the contract, with its figures (empty if none)."""
        found = []
        if self.lost:
            found.append(f"lost {len(self.lost)} of {self.accepted} accepted: {self.lost[:12]}")
        if self.duplicated:
            sample = list(self.duplicated.items())[:8]
            found.append(
                f"{len(self.duplicated)} update(s) received more than once "
                f"({self.extra_copies} extra copies): {sample}"
            )
        if self.out_of_order:
            found.append(f"{len(self.out_of_order)} out of publish order: {self.out_of_order[:6]}")
        if self.not_increasing:
            found.append(
                f"{len(self.not_increasing)} position(s) not increasing: {self.not_increasing[:6]}"
            )
        if self.unexpected:
            found.append(f"{len(self.unexpected)} never accepted: {self.unexpected[:8]}")
        if self.resets and not resets_allowed:
            found.append(f"{len(self.resets)} reset(s): {self.resets[:3]}")
        return found

    def summary(self) -> str:
        return (
            f"accepted {self.accepted}, received {self.received}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)} (+{self.extra_copies} copies), "
            f"out of order {len(self.out_of_order)}, positions not increasing "
            f"{len(self.not_increasing)}, resets {len(self.resets)}"
        )


def verdict(inbox: Inbox, accepted: Sequence[Key]) -> Verdict:
    """Measure what ``inbox`` received against ``accepted``, the updates Redis
    accepted in publish order (each once)."""
    order = {key: index for index, key in enumerate(accepted)}
    keys = inbox.keys
    counts = Counter(keys)
    result = Verdict(accepted=len(accepted), received=len(keys), resets=list(inbox.resets))
    result.lost = [key for key in accepted if key not in counts]
    result.duplicated = {key: count for key, count in counts.items() if count > 1}
    result.unexpected = [key for key in counts if key not in order]
    known = [key for key in keys if key in order]
    result.out_of_order = [
        (earlier, later)
        for earlier, later in itertools.pairwise(known)
        if order[later] < order[earlier]
    ]
    positions = [got.position for got in inbox.updates]
    result.not_increasing = [
        (earlier, later)
        for earlier, later in itertools.pairwise(positions)
        if position_pair(later) <= position_pair(earlier)
    ]
    return result


def exactly_once(inbox: Inbox, accepted: Sequence[Key], who: str) -> Verdict:
    """Assert the strong form: no reset, and exactly ``accepted``, each once, in order,
    positions strictly increasing. Return the verdict (for the test's printout)."""
    found = verdict(inbox, accepted)
    problems = found.problems()
    assert not problems, f"{who}: {found.summary()}; " + "; ".join(problems)
    assert inbox.keys == list(accepted), f"{who}: expected exactly the accepted updates"
    return found
