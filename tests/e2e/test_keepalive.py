"""Keepalive: a client that stops answering pings is dropped; one that answers stays.

Daphne runs with the project's flags (botrix_site.serve.daphne_argv), with the
ping interval and timeout shortened so the test takes seconds, not minutes.
"""

from __future__ import annotations

import asyncio

import pytest

from botrix_site.serve import PING_INTERVAL, PING_TIMEOUT, daphne_argv
from harness.clients import login, welcomed, ws_connect
from harness.processes import child_env, start_daphne
from tests.conftest import STAFF
from tests.support.clients import read_until_dropped, stalled_client

pytestmark = pytest.mark.e2e


def test_project_flags_ping_every_30s_and_drop_within_2_minutes():
    argv = daphne_argv("127.0.0.1", 8000)
    assert argv[argv.index("--ping-interval") + 1] == "30"
    assert argv[argv.index("--websocket_timeout") + 1] == "-1", "expected no 24 h cut-off"
    assert "backlog=4096" in argv[argv.index("-e") + 1]
    assert PING_INTERVAL + 2 + PING_TIMEOUT <= 120  # checks run every 2 s


@pytest.fixture
def fast_ping_daphne(redis_server, e2e_database):
    env = child_env(REDIS_URL=redis_server.url, DATABASE_URL=e2e_database)
    process, port = start_daphne(env, "--ping-interval", "1", "--ping-timeout", "2")
    yield process, port
    process.stop()


async def test_silent_client_is_dropped_and_answering_client_stays(fast_ping_daphne):
    daphne, port = fast_ping_daphne
    cookie = login(port, *STAFF)
    async with ws_connect(port, cookie) as answering:  # websockets answers pings by itself
        await welcomed(answering)
        mark = daphne.mark()
        silent = await asyncio.to_thread(stalled_client, port, cookie)  # it never sends a pong
        # Dropped after about 1 + 2 s (ping interval + timeout).
        await asyncio.to_thread(read_until_dropped, silent, 10)
        silent.close()
        # The silent client's disconnect, logged while the answering one is still open.
        await asyncio.to_thread(daphne.wait_for, r'"WSDISCONNECT /ws"', after=mark)
        await answering.send('{"type":"ping"}')
        assert "pong" in await asyncio.wait_for(answering.recv(), 5)
