"""How the revocation tests watch their sockets: each opened once its server holds
its grant, the first frame after a trigger on each process, timed from the
trigger's completion, and the servers' log line that says who found it.

With ``REVOCATION_TIMINGS`` set, :func:`record_timing` appends each figure to that
file, one JSON object a line: ``{"test": ..., "process": ..., "seconds": ...}``.
A trigger completes when its call returns (in the Django child, ``time.time()``
there) or its HTTP answer is back. An announced trigger sends its announcement
before it returns (on commit, inside the save or the view), so a socket may get
its frame a few milliseconds before that: a negative figure, not an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from harness.clients import login, recv_json, welcomed, ws_connect
from tests.support.revocation import Cluster, User, demote, grant, new_user

__all__ = [
    "SIGNAL_BOUND",
    "SLACK",
    "Socket",
    "check_narrowing",
    "closed_with",
    "expect_closes",
    "expect_narrowed",
    "first_frames",
    "found_by",
    "open_pair",
    "open_socket",
    "record_timing",
    "still_receiving",
]

SIGNAL_BOUND = 3.0
"""Seconds a signal's (or an explicit call's) announcement is given to act."""
SLACK = 10.0
"""Seconds added to each bound, for a loaded machine: the wait's timeout, not a claim."""


@dataclass
class Socket:
    ws: ClientConnection
    client_id: str
    server: str


async def open_socket(
    cluster: Cluster,
    exits: contextlib.AsyncExitStack,
    server: str,
    cookie: str | None = None,
    *,
    path: str = "/ws",
    token: str | None = None,
) -> Socket:
    """Connect to ``server`` with a session ``cookie`` (or a ``token``); return once it
    was welcomed and its server holds its grant (the "connected" log line)."""
    port = cluster.servers[server].port
    if token is not None:
        subprotocols: Any = ["jobupdates.v1", f"token.{token}"]
        opening = connect(f"ws://127.0.0.1:{port}{path}", subprotocols=subprotocols)
    else:
        opening = ws_connect(port, cookie, path=path)
    ws = await exits.enter_async_context(opening)
    client_id = await welcomed(ws)
    process = cluster.servers[server].process
    await asyncio.to_thread(process.wait_for, f"client {client_id} connected")
    return Socket(ws, client_id, server)


async def first_frames(
    sockets: Sequence[Socket], trigger: Callable[[], float], timeout: float
) -> dict[str, tuple[dict[str, Any], float]]:
    """Run ``trigger`` (in a thread; it returns ``time.time()`` at its completion) and
    receive the next frame of each socket meanwhile; return, by server, each frame
    and the seconds from the trigger's completion to its arrival. ``timeout`` counts
    from the trigger's completion."""

    async def receive(socket: Socket) -> tuple[dict[str, Any], float]:
        frame = await socket.ws.recv()  # bounded below, from the trigger's completion
        arrived = time.time()
        assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
        value: dict[str, Any] = json.loads(frame)
        return value, arrived

    tasks = {socket.server: asyncio.create_task(receive(socket)) for socket in sockets}
    try:
        done_at = await asyncio.to_thread(trigger)
        deadline = time.monotonic() + timeout
        found: dict[str, tuple[dict[str, Any], float]] = {}
        for server, task in tasks.items():
            try:
                frame, arrived = await asyncio.wait_for(task, deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError(
                    f"expected a frame on process {server} within {timeout}s of the trigger"
                ) from None
            found[server] = (frame, arrived - done_at)
        return found
    finally:
        for task in tasks.values():
            task.cancel()


async def open_pair(
    cluster: Cluster, exits: contextlib.AsyncExitStack, cookie: str | None = None, **how: Any
) -> list[Socket]:
    """One socket on each server process (:func:`open_socket`)."""
    return [await open_socket(cluster, exits, server, cookie, **how) for server in cluster.servers]


async def expect_closes(
    test: str,
    sockets: Sequence[Socket],
    trigger: Callable[[], float],
    *,
    code: str,
    close_code: int,
    timeout: float,
) -> None:
    """Run ``trigger``; each socket (one per process) gets an ``error`` frame with
    ``code`` within ``timeout`` of its completion, then the close ``close_code``.
    Records each socket's time (:func:`record_timing`)."""
    assert len({socket.server for socket in sockets}) == len(sockets), "one socket per process"
    frames = await first_frames(sockets, trigger, timeout)
    for socket in sockets:
        frame, seconds = frames[socket.server]
        assert (frame["type"], frame.get("code")) == ("error", code), f"{socket.server}: {frame}"
        assert await closed_with(socket) == close_code, socket.server
        record_timing(test, socket.server, seconds)


async def expect_narrowed(
    test: str,
    cluster: Cluster,
    sockets: Sequence[Socket],
    trigger: Callable[[], float],
    *,
    lost: str,
    kept: str,
    timeout: float,
) -> None:
    """Run ``trigger``; each socket (one per process, subscribed to ``lost`` and
    ``kept``) gets ``unsubscribed`` ``lost`` (``permission_revoked``) within
    ``timeout`` of its completion, stays open, and then receives ``kept``'s
    updates and not ``lost``'s. Records each socket's time (:func:`record_timing`)."""
    assert len({socket.server for socket in sockets}) == len(sockets), "one socket per process"
    frames = await first_frames(sockets, trigger, timeout)
    unsubscribed = {"type": "unsubscribed", "job_ids": [lost], "reason": "permission_revoked"}
    for socket in sockets:
        frame, seconds = frames[socket.server]
        assert frame == unsubscribed, f"{socket.server}: {frame}"
        record_timing(test, socket.server, seconds)
    for job in (lost, kept):  # in this order: the next frame shows the lost one is not sent
        await asyncio.to_thread(cluster.publish, job)
    for socket in sockets:
        update = await recv_json(socket.ws, timeout=SLACK)
        assert (update["type"], update["job_id"]) == ("job_update", kept), socket.server


async def check_narrowing(
    cluster: Cluster, test: str, *, announced: bool, source: str, timeout: float
) -> None:
    """A subscriber of two jobs, on each process, whose authorizer stops granting one:
    ``unsubscribed`` for it (after ``jobupdates.reauthorize(job_id=...)`` if
    ``announced``, else with no signal and no call), found by ``source``; another
    user's sockets keep receiving."""
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    demote(cluster.django, user)
    kept, lost = f"{user.name}-kept", f"{user.name}-lost"
    grant(cluster, user, kept, lost)
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie, path=f"/ws?job={kept}&job={lost}")
        others = await open_pair(cluster, exits, cluster.other_cookie)

        def unannounced() -> float:
            grant(cluster, user, lost, revoke=True)
            return time.time()

        trigger = unannounced
        if announced:
            grant(cluster, user, lost, revoke=True)
            trigger = cluster.change(f"jobupdates.reauthorize(job_id={lost!r})")
        await expect_narrowed(
            test, cluster, sockets, trigger, lost=lost, kept=kept, timeout=timeout
        )
        for socket in sockets:
            found_by(cluster, socket, user, "narrow", source)
        await still_receiving(cluster, others)


async def closed_with(socket: Socket) -> int:
    """Wait for the server's close after its error frame; return the close code."""
    try:
        frame = await asyncio.wait_for(socket.ws.recv(), 5)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "expected a close frame from the server"
        return closed.rcvd.code
    raise AssertionError(f"expected the close after the error frame, got {frame!r}")


def found_by(cluster: Cluster, socket: Socket, user: User, action: str, source: str) -> str:
    """Return the server's log line of ``socket``'s revocation; fail unless ``action``
    was found by ``source`` (``the sweep``, ``an announced revoke``, ...)."""
    process = cluster.servers[socket.server].process
    line = rf"client {socket.client_id} \(user {user.pk}\): (\w+): .* \(found by ([^)]*)\)"
    match = process.wait_for(line, timeout=5)
    assert (match.group(1), match.group(2)) == (action, source), match.group(0)
    return match.group(0)


async def still_receiving(cluster: Cluster, sockets: Sequence[Socket]) -> None:
    """Publish an update of a new job; each of ``sockets`` receives it (after any
    update published earlier in the test)."""
    job = f"still-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(cluster.publish, job)
    for socket in sockets:
        while True:
            frame = await recv_json(socket.ws, timeout=SLACK)
            assert frame["type"] == "job_update", f"{socket.server}: {frame}"
            if frame["job_id"] == job:
                break


def record_timing(test: str, process: str, seconds: float) -> None:
    """Append ``{test, process, seconds}`` to the file ``REVOCATION_TIMINGS`` names, if set."""
    path = os.environ.get("REVOCATION_TIMINGS")
    if path:
        line = json.dumps({"test": test, "process": process, "seconds": round(seconds, 4)})
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
