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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
            f"Cookie: {cookie}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b'"welcome"' not in received:
        chunk = sock.recv(4096)
        assert chunk, f"expected a handshake and a welcome, got {received[:200]!r}"
        received += chunk
    assert received.startswith(b"HTTP/1.1 101"), received[:100]
    return sock


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
