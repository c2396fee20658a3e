"""The load generator's connections: one picows listener each, and how they are opened.

:func:`connect_all` opens a generator's share of the connections and awaits
their welcomes. A connection the server refuses as busy (close 4503 before its
welcome) comes back after a jittered backoff, as ``jobupdates.js`` does
(:mod:`benchmarks.backoff`); any other failure is final. Per connection there
is the listener and its transport, nothing more: the counts live in one dict
per call.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Protocol, cast

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from benchmarks.backoff import BUSY_CLOSE_CODE, ServerBusyError, delay

__all__ = ["Connection", "Receiver", "connect_all"]


class Receiver(Protocol):
    """What a connection reports to: the generator."""

    transports: list[WSTransport]
    disconnects: int

    def on_text(self, connection: Connection, payload: bytes, now: float) -> None: ...


class Connection(WSListener):  # type: ignore[misc]
    """One client: tells the generator about every text frame, and when it is welcomed
    (``welcomed`` resolves to the welcome's receipt time, or fails: with
    :class:`ServerBusyError` on a close 4503 before it, else ConnectionError)."""

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver
        self.welcomed = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.receiver.on_text(self, frame.get_payload_as_bytes(), time.monotonic())
        elif frame.msg_type is WSMsgType.CLOSE:
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
    started = time.monotonic()

    async def one(extra_headers: dict[str, str]) -> None:
        async with limit:
            attempts.append(time.monotonic())
            retry = 0
            while True:
                try:
                    welcomes.append(await _open(receiver, url, extra_headers, timeouts))
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
    }


async def _open(
    receiver: Receiver, url: str, headers: dict[str, str], timeouts: tuple[float, float]
) -> float:
    """Open one connection and await its welcome; keep it, return the welcome's time."""
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
    try:
        welcomed: float = await asyncio.wait_for(cast(Connection, listener).welcomed, timeouts[1])
    except BaseException:
        transport.disconnect()
        raise
    receiver.transports.append(transport)  # only welcomed ones expect updates
    return welcomed
