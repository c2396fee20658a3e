"""Who is connected, end to end: two Daphne processes, one bridge, one Redis.

Clients on either process show up in ``/ws/stats`` and in the admin's
"Connected clients"; a process killed with SIGKILL drops out within two
refresh intervals; the admin's disconnect action closes a client on another
process with 4000 after an error frame, and the others stay connected.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from botrix_site.redis_server import RedisServer
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import (
    Process,
    child_env,
    session_cookie,
    start_bridge,
    start_daphne,
)
from tests.conftest import STAFF, VIEWER
from tests.support.clients import closing_error

pytestmark = pytest.mark.e2e

INTERVAL = 1.0
"""JOBUPDATES_REGISTRY_INTERVAL of the processes under test, in seconds."""
CHANGELIST = "/admin/jobupdates/connectedclient/"
UPDATE = {"job_id": "j-1", "status": "completed", "data": None}


@dataclass
class Cluster:
    redis: RedisServer
    a: Process
    a_port: int
    b: Process
    b_port: int
    bridge: Process
    env: dict[str, str]


@pytest.fixture
def cluster(redis_server: RedisServer, e2e_database: str, tmp_path) -> Iterator[Cluster]:
    """Two Daphne processes and one bridge, refreshing the registry every second."""
    env = child_env(
        REDIS_URL=redis_server.url,
        DATABASE_URL=e2e_database,
        JOBUPDATES_REGISTRY_INTERVAL=str(INTERVAL),
        JOBUPDATES_REGISTRY_SOCKET_TIMEOUT="1",
    )
    a, a_port = start_daphne(env)
    b, b_port = start_daphne(env)
    bridge = start_bridge(env)
    yield Cluster(redis_server, a, a_port, b, b_port, bridge, env)
    for process in (bridge, b, a):
        process.stop()


def http_get(port: int, path: str, cookie: str | None = None) -> tuple[int, str]:
    """GET ``path``; return the status and the body."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if cookie:
        request.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def stats(port: int, cookie: str) -> dict[str, Any]:
    status, body = http_get(port, "/ws/stats", cookie)
    assert status == 200, body
    value: dict[str, Any] = json.loads(body)
    return value


async def poll(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll ``check`` (an HTTP read) until it holds; return the seconds it took."""
    started = time.monotonic()
    while not await asyncio.to_thread(check):
        assert time.monotonic() - started < timeout, f"expected {what} within {timeout}s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def instance_of(process: Process, document: dict[str, Any]) -> str:
    """Return the instance id of ``process`` in a /ws/stats document."""
    pid = process.popen.pid
    found = [name for name, info in document["instances"].items() if info["pid"] == pid]
    assert len(found) == 1, f"expected one instance with pid {pid}, got {document['instances']}"
    return found[0]


def disconnect_via_admin(port: int, cookie: str, client_id: str) -> str:
    """Select ``client_id`` in the changelist and run the disconnect action, as a browser would."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("Cookie", cookie)]
    base = f"http://127.0.0.1:{port}{CHANGELIST}"
    page = opener.open(f"{base}?q={client_id}", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "expected a CSRF token in the changelist's action form"
    assert f'value="{client_id}"' in page, "expected the client's checkbox"
    csrf_cookie = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token.group(1),
            "action": "disconnect_selected",
            "_selected_action": client_id,
            "index": "0",
        }
    ).encode()
    request = urllib.request.Request(f"{base}?q={client_id}", data=form)
    request.add_header("Cookie", f"{cookie}; csrftoken={csrf_cookie}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


async def test_two_processes_stats_admin_kill_and_disconnect(cluster, publish):
    staff = login(cluster.a_port, *STAFF)
    viewer = session_cookie(cluster.env, VIEWER[0])
    async with (
        ws_connect(cluster.a_port, staff) as a1,
        ws_connect(cluster.a_port, viewer) as a2,
        ws_connect(cluster.b_port, staff) as b1,
        ws_connect(cluster.b_port, viewer) as b2,
    ):
        ids = {name: await welcomed(ws) for name, ws in (("a1", a1), ("a2", a2), ("b1", b1))}
        ids["b2"] = await welcomed(b2)

        # Both processes' clients are in /ws/stats (read from either) and the total is the sum.
        await poll(
            "4 clients in /ws/stats",
            lambda: stats(cluster.b_port, staff)["connected_clients"] == 4,
            5,
        )
        document = stats(cluster.a_port, staff)
        per_instance = {i: v["connected_clients"] for i, v in document["instances"].items()}
        assert per_instance == {
            instance_of(cluster.a, document): 2,
            instance_of(cluster.b, document): 2,
        }
        assert document["connected_clients"] == sum(per_instance.values())
        assert document["distinct_users"] == 2
        assert document["uptime_seconds"] > 0
        assert set(document) >= {"messages_bridged", "rejected", "bridge"}

        # ... and in the admin list, fetched over HTTP as a staff member.
        status, page = http_get(cluster.b_port, CHANGELIST, staff)
        assert status == 200
        assert all(client_id in page for client_id in ids.values()), page

        # The disconnect action, posted to B, closes a client on A: error frame, then 4000.
        disconnect_via_admin(cluster.b_port, staff, ids["a2"])
        error, code = await closing_error(a2)
        assert (error["code"], code) == ("disconnected_by_staff", 4000), error
        publish(json.dumps(UPDATE))
        for ws in (a1, b1, b2):  # the others stay connected and keep receiving
            assert (await recv_json(ws, timeout=2))["job_id"] == "j-1"
        sent_one = '<td class="field-messages_sent">1</td>'
        await poll(  # counted in memory, written by B's next refresh
            "b1's messages sent = 1 in the admin list",
            lambda: sent_one in http_get(cluster.b_port, f"{CHANGELIST}?q={ids['b1']}", staff)[1],
            2 * INTERVAL + 1.5,
        )
        await poll(
            "3 clients after the disconnect",
            lambda: stats(cluster.b_port, staff)["connected_clients"] == 3,
            5,
        )

        # kill -9 of A: its clients leave /ws/stats and the admin list within two intervals.
        cluster.a.kill()
        took = await poll(
            "A's clients gone from /ws/stats",
            lambda: stats(cluster.b_port, staff)["connected_clients"] == 2,
            2 * INTERVAL + 1.5,
        )
        assert took <= 2 * INTERVAL + 1.5
        document = stats(cluster.b_port, staff)
        assert list(document["instances"]) == [instance_of(cluster.b, document)]
        status, page = http_get(cluster.b_port, CHANGELIST, staff)
        assert status == 200
        assert ids["a1"] not in page
        assert ids["b1"] in page
        assert ids["b2"] in page
