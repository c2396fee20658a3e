"""What only tests need of a client: checks of what it receives, and a raw socket that
stops reading.

The clients the benchmarks share (login, WebSocket connections) are in
:mod:`harness.clients`.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from harness.clients import recv_json
from tests.support.raw_websocket import RawWebSocket

SLOW_RCVBUF = 4096
"""Bytes of receive buffer of a :func:`stalled_client`: the server's sends pile up soon."""


def without_position(frame: dict[str, Any]) -> dict[str, Any]:
    """Check a job_update's position is a stream ID, and return the frame without it."""
    rest = dict(frame)
    position = rest.pop("position")
    assert re.fullmatch(r"\d+-\d+", position), f"expected a stream ID position, got {position!r}"
    return rest


async def closing_error(ws: ClientConnection) -> tuple[dict[str, Any], int]:
    """Receive the error message a server sends as it closes the connection; return it
    and the close code."""
    error = await recv_json(ws)
    assert error["type"] == "error", error
    assert error["message"], error
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None, "expected a close frame from the server"
    return error, closed.value.rcvd.code


def stalled_client(port: int, cookie: str, path: str = "/ws") -> socket.socket:
    """Open a WebSocket on a raw socket with a small receive buffer, read up to the
    welcome, then stop reading (and never answer a ping)."""
    client = RawWebSocket(port, cookie, path=path, receive_buffer=SLOW_RCVBUF)
    welcome = client.read_message().value()
    assert welcome["type"] == "welcome", welcome
    return client.sock


def read_until_dropped(sock: socket.socket, timeout: float) -> None:
    """Read ``sock`` until the server closes or resets it; fail if it is still open
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(1 << 20):
                return
    except ConnectionResetError:
        return
    except TimeoutError:
        pass
    raise AssertionError(f"expected the server to drop the connection within {timeout}s")
