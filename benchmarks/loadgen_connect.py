"""The load generator's connections: one picows listener each, and how they are opened.

:func:`connect_all` opens a generator's share of the connections and awaits
their welcomes. A connection the server refuses as busy (close 4503 before its
welcome) comes back after a jittered backoff, as ``jobupdates.js`` does
(:mod:`benchmarks.backoff`); any other failure is final. Per connection there
is the listener and its transport, nothing more: the counts live in one dict
per call. A connection reads what the server agreed to in its 101 answer
(permessage-deflate, a subprotocol: :mod:`benchmarks.wire`) and hands every
data frame to the generator as it came, compressed or not.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Protocol, cast

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from benchmarks.backoff import BUSY_CLOSE_CODE, ServerBusyError, delay
from benchmarks.wire import Inflater, Negotiated, negotiated

__all__ = ["Connection", "Receiver", "connect_all"]


class Receiver(Protocol):
    """What a connection reports to: the generator."""

    transports: list[WSTransport]
    disconnects: int

    def on_message(
        self, connection: Connection, payload: bytes, binary: bool, compressed: bool, now: float
    ) -> None: ...


class Connection(WSListener):
    """One client: tells the generator about every data frame, and when it is welcomed
    (``welcomed`` resolves to the welcome's receipt time, or fails: with
    :class:`ServerBusyError` on a close 4503 before it, else ConnectionError).

    ``agreed``: what the server's 101 answer agreed to; ``inflater``: set if it
    agreed to permessage-deflate."""

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver
        self.welcomed = asyncio.get_running_loop().create_future()
        self.agreed = Negotiated()
        self.inflater: Inflater | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.agreed = negotiated(transport.response.headers)
        if self.agreed.deflate:
            self.inflater = Inflater(self.agreed.server_no_context_takeover)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            payload = frame.get_payload_as_bytes()
            binary = kind is WSMsgType.BINARY
            self.receiver.on_message(self, payload, binary, bool(frame.rsv1), time.monotonic())
        elif kind is WSMsgType.CLOSE:
            code = frame.get_close_code()
            if not self.welcomed.done():  # busy, or a failure naming its close code
                error = ServerBusyError if code == BUSY_CLOSE_CODE else ConnectionError
                self.welcomed.set_exception(error(f"closed {code} before the welcome frame"))
            transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.receiver.disconnects += 1
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError("closed before the welcome frame"))


async def connect_all(
    receiver: Receiver,
    url: str,
    headers: list[dict[str, str]],
    concurrency: int,
    timeouts: tuple[float, float],
    busy_attempts: int,
) -> dict[str, Any]:
    """Open one connection per entry of ``headers``, ``concurrency`` handshakes at a
    time, each with up to ``busy_attempts`` attempts; await their welcomes; report.

    ``headers`` may repeat one dict for every connection. ``timeouts``: seconds
    for the handshake, then for the welcome.
    """
    limit = asyncio.Semaphore(concurrency)
    errors: list[str] = []
    attempts: list[float] = []
    welcomes: list[float] = []
    tally = {"first_attempt": 0, "busy": 0, "retries": 0}
    agreements: Counter[str] = Counter()
    started = time.monotonic()

    async def one(extra_headers: dict[str, str]) -> None:
        async with limit:
            attempts.append(time.monotonic())
            retry = 0
            while True:
                try:
                    welcome, agreed = await _open(receiver, url, extra_headers, timeouts)
                except ServerBusyError as exc:
                    tally["busy"] += retry == 0
                    if retry + 1 >= busy_attempts:
                        errors.append(f"ServerBusyError: {exc}, {retry + 1} attempt(s)")
                        return
                    await asyncio.sleep(delay(retry))
                    retry += 1
                    tally["retries"] += 1
                    continue
                except Exception as exc:  # any other failure is counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return
                welcomes.append(welcome)
                agreements[agreed.label] += 1
                tally["first_attempt"] += retry == 0
                return

    await asyncio.gather(*(one(h) for h in headers))
    return {
        "connected": len(headers) - len(errors),
        "failed": len(errors),
        "errors": errors[:5],
        "error_counts": dict(Counter(errors).most_common(10)),
        "seconds": time.monotonic() - started,
        "first_attempt": min(attempts, default=None),
        "last_welcome": max(welcomes, default=None),
        "welcomed_first_attempt": tally["first_attempt"],
        "refused_busy": tally["busy"],
        "retries": tally["retries"],
        "negotiated": dict(agreements),
    }


async def _open(
    receiver: Receiver, url: str, headers: dict[str, str], timeouts: tuple[float, float]
) -> tuple[float, Negotiated]:
    """Open one connection and await its welcome; keep it, return the welcome's time and
    what the server agreed to."""
    transport, listener = await ws_connect(
        lambda: Connection(receiver),
        url,
        extra_headers=headers,
        websocket_handshake_timeout=timeouts[0],
    )
    if listener is None:  # picows: the server went during the handshake
        if transport is not None:
            transport.disconnect()
        raise ConnectionError("closed during the handshake")
    connection = cast(Connection, listener)
    try:
        welcomed: float = await asyncio.wait_for(connection.welcomed, timeouts[1])
    except BaseException:
        transport.disconnect()
        raise
    receiver.transports.append(transport)  # only welcomed ones expect updates
    return welcomed, connection.agreed
