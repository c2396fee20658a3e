"""The chaos run's WebSocket clients: logical clients that live the whole run.

Each one connects to a random server and, on any close or failure, connects
again to a random server after a jittered delay (50-500 ms after a welcomed
connection; exponential backoff with full jitter, capped, while connections are
refused), resuming with ``?since=`` the position of the last ``job_update`` it
handled. A ``reset`` sets that position to the reset's own ``position`` if it
has one, else clears it, as ``jobupdates.js`` does. Every message is recorded
with the time it was read and its connection's number (:class:`ClientLog`).

All of them share one asyncio loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from harness.chaos.records import PUBLISHERS, ClientLog, Connection, Frame, parse_position
from harness.clients import ws_connect

RECONNECT = (0.05, 0.5)
"""Seconds before reconnecting after a welcomed connection ended (uniform)."""
BACKOFF_CAP = 5.0
"""The longest delay between two refused attempts."""


class LogicalClient:
    """One client that reconnects and resumes until cancelled."""

    def __init__(self, name: str, cookie: str, ports: Sequence[int], rng: random.Random) -> None:
        self.log = ClientLog(name)
        self.cookie = cookie
        self.ports = ports
        self.rng = rng
        self.position: str | None = None
        """Where to resume: the last ``job_update``'s position, or a reset's."""
        self.welcomed = asyncio.Event()
        """Set at the first welcome."""
        self.down_since: float | None = None
        """When the last welcomed connection ended, while no other is welcomed."""
        self.targets: dict[str, int] = {}
        self.reached = asyncio.Event()
        """Set once every target (publisher, n) of :meth:`aim` was delivered."""

    async def run(self) -> None:
        refused = 0
        try:
            while True:
                connection = await self._connect()
                if connection.welcomed is not None:
                    refused = 0
                    delay = self.rng.uniform(*RECONNECT)
                else:
                    refused += 1
                    cap = min(BACKOFF_CAP, RECONNECT[1] * 2**refused)
                    delay = self.rng.uniform(RECONNECT[0], cap)
                await asyncio.sleep(delay)
        finally:
            if self.down_since is not None:
                self.log.disconnected.append((self.down_since, time.monotonic()))
                self.down_since = None

    async def _connect(self) -> Connection:
        port = self.rng.choice(self.ports)
        since = self.position
        path = f"/ws?since={since}" if since else "/ws"
        connection = Connection(len(self.log.connections) + 1, port, since, time.monotonic())
        self.log.connections.append(connection)
        try:
            async with ws_connect(port, self.cookie, path) as ws:
                connection.opened = time.monotonic()
                try:
                    while True:
                        self._received(await ws.recv(), connection)
                except ConnectionClosed as closed:
                    connection.code = closed.rcvd.code if closed.rcvd else 1006
        except InvalidStatus as exc:
            connection.error = f"http_{exc.response.status_code}"
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
            if connection.opened is None:
                connection.error = _refusal(exc)
            elif connection.code is None:
                connection.error = type(exc).__name__
        except asyncio.CancelledError:
            connection.error = "stopped"  # the end of the run: not a disconnection
            raise
        finally:
            connection.closed = time.monotonic()
            ended = connection.welcomed is not None and connection.error != "stopped"
            if ended and self.down_since is None:
                self.down_since = connection.closed
        return connection

    def _received(self, message: str | bytes, connection: Connection) -> None:
        t = time.monotonic()
        conn = connection.no
        try:
            frame: Any = json.loads(message)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            self.log.add(Frame(t, conn, "other", detail="not_json"))
            return
        kind = frame.get("type")
        if kind == "job_update":
            self._update(t, conn, frame)
        elif kind == "welcome":
            self.log.add(Frame(t, conn, "welcome"))
            if connection.welcomed is None:
                connection.welcomed = t
            if self.down_since is not None:
                self.log.disconnected.append((self.down_since, t))
                self.down_since = None
            self.welcomed.set()
        elif kind == "reset":
            position = frame.get("position")
            self.position = position if isinstance(position, str) else None
            reason = str(frame.get("reason"))
            self.log.add(Frame(t, conn, "reset", position=parse_position(position), detail=reason))
        elif kind == "error":
            self.log.add(Frame(t, conn, "error", detail=str(frame.get("code"))))
        else:
            self.log.add(Frame(t, conn, "other", detail=str(kind)))

    def _update(self, t: float, conn: int, frame: dict[str, Any]) -> None:
        job_id = frame.get("job_id")
        publisher = job_id if job_id in PUBLISHERS else None
        data = frame.get("data")
        n = data.get("n") if isinstance(data, dict) else None
        number = n if isinstance(n, int) else None
        position = frame.get("position")
        if isinstance(position, str) and position:
            self.position = position
        self.log.add(Frame(t, conn, "job_update", publisher, number, parse_position(position)))
        if self.targets and publisher is not None and self.targets.get(publisher) == number:
            del self.targets[publisher]
            if not self.targets:
                self.reached.set()

    def aim(self, targets: Mapping[str, int]) -> None:
        """Set :attr:`reached` once each publisher's update ``targets[publisher]`` is
        delivered (counting those already delivered)."""
        self.targets = dict(targets)
        for frame in self.log.frames():
            if frame.publisher is not None and self.targets.get(frame.publisher) == frame.n:
                del self.targets[frame.publisher]
        if not self.targets:
            self.reached.set()


def _refusal(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "open_timeout"
    return type(exc).__name__


class Clients:
    """The logical clients, each in its own task on the running loop."""

    def __init__(
        self, count: int, cookie_of: Callable[[int], str], ports: Sequence[int], seed: int
    ) -> None:
        self.clients = [
            LogicalClient(f"c{i:02d}", cookie_of(i), ports, random.Random(f"{seed}:{i}"))
            for i in range(count)
        ]
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(client.run()) for client in self.clients]

    async def welcomed(self, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every client was welcomed once; False if ``timeout`` passed first."""
        return await _all([client.welcomed.wait() for client in self.clients], timeout)

    async def reached(self, targets: Mapping[str, int], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until every client got each publisher's update ``targets[publisher]``."""
        for client in self.clients:
            client.aim(targets)
        return await _all([client.reached.wait() for client in self.clients], timeout)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def logs(self) -> list[ClientLog]:
        return [client.log for client in self.clients]


async def _all(waits: Sequence[Any], timeout: float) -> bool:  # noqa: ASYNC109
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout)
    except TimeoutError:
        return False
    return True
