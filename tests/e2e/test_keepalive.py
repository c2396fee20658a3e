"""Keepalive: a client that stops answering pings is dropped; one that answers stays.

Daphne runs with the project's flags (botrix_site.serve.daphne_argv), with the
ping interval and timeout shortened so the test takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import pytest

from botrix_site.serve import PING_INTERVAL, PING_TIMEOUT, daphne_argv
from tests.conftest import STAFF
from tests.support.clients import login, welcomed, ws_connect
from tests.support.processes import Process, child_env

pytestmark = pytest.mark.e2e


def test_project_flags_ping_every_30s_and_drop_within_2_minutes():
    argv = daphne_argv("127.0.0.1", 8000)
    assert argv[argv.index("--ping-interval") + 1] == "30"
    assert argv[argv.index("--websocket_timeout") + 1] == "-1", "expected no 24 h cut-off"
    assert "backlog=4096" in argv[argv.index("-e") + 1]
    assert PING_INTERVAL + 2 + PING_TIMEOUT <= 120  # checks run every 2 s


def read_until_dropped(sock: socket.socket) -> bytes:
    """Read until the server closes or resets the connection; return all it sent."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


@pytest.fixture
def fast_ping_daphne(redis_server, e2e_database):
    env = child_env(REDIS_URL=redis_server.url, DATABASE_URL=e2e_database)
    argv = [
        sys.executable,
        "-m",
        "daphne",
        *daphne_argv("127.0.0.1", 0, "--ping-interval", "1", "--ping-timeout", "2"),
    ]
    process = Process("daphne", argv, env)
    port = int(process.wait_for(r"Listening on TCP address 127\.0\.0\.1:(\d+)").group(1))
    yield process, port
    process.stop()


async def test_silent_client_is_dropped_and_answering_client_stays(fast_ping_daphne):
    daphne, port = fast_ping_daphne
    cookie = login(port, *STAFF)
    async with ws_connect(port, cookie) as answering:  # websockets answers pings by itself
        await welcomed(answering)
        mark = daphne.mark()
        silent = socket.create_connection(("127.0.0.1", port))
        silent.sendall(
            (
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
                f"Cookie: {cookie}\r\n\r\n"
            ).encode()
        )
        silent.settimeout(20)
        started = time.monotonic()
        received = await asyncio.to_thread(read_until_dropped, silent)  # it never sends a pong
        assert received.startswith(b"HTTP/1.1 101"), received[:100]
        assert b'"welcome"' in received
        assert time.monotonic() - started < 10, "expected the silent client dropped after ~1+2 s"
        silent.close()
        # The silent client's disconnect, logged while the answering one is still open.
        await asyncio.to_thread(daphne.wait_for, r'"WSDISCONNECT /ws"', after=mark)
        await answering.send('{"type":"ping"}')
        assert "pong" in await asyncio.wait_for(answering.recv(), 5)
