"""Locked down, end to end: real redis-server, Daphne and run_bridge, real WebSocket clients.

Authentication (session and token), the origin check (cross-site WebSocket
hijacking), the all-jobs permission, per-job authorization with a custom
``JOBUPDATES_JOB_AUTHORIZER`` (:mod:`tests.e2e.authorizers`), and every
limit: connections per process and per user, the inbound rate, and frame
size. Each refusal is asserted as the client sees it: the error frame, then
the close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio
from django.test import override_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from botrix_site.redis_server import RedisServer
from harness.clients import login, recv_json, welcomed, ws_connect
from harness.processes import (
    Process,
    child_env,
    run_manage,
    session_cookie,
    start_bridge,
    start_daphne,
)
from harness.updates import job_update
from jobupdates.access.tokens import read_token, sign_token
from tests.conftest import CHANNEL, PLAIN, STAFF, VIEWER, Stack
from tests.support.clients import closing_error

pytestmark = pytest.mark.e2e

RATE_BURST = 5
MAX_STRIKES = 3
CSRF = "c" * 32
"""A CSRF secret, sent as both the ``csrftoken`` cookie and the ``X-CSRFToken`` header."""


@dataclass
class Secured(Stack):
    """The stack, with a session of each user."""

    cookies: dict[str, str]

    def publish(self, job_id: str, status: str = "completed") -> None:
        client = redis.Redis.from_url(self.redis.url)
        client.publish(CHANNEL, job_update(job_id, status))
        client.close()


@pytest.fixture(scope="module")
def secured(e2e_database: str) -> Iterator[Secured]:
    """Redis, Daphne and a bridge with a small rate limit and the own-jobs authorizer."""
    with RedisServer() as server:
        env = child_env(
            REDIS_URL=server.url,
            DATABASE_URL=e2e_database,
            JOBUPDATES_JOB_AUTHORIZER="tests.e2e.authorizers.own_jobs",
            JOBUPDATES_RATE_LIMIT="0.1",
            JOBUPDATES_RATE_BURST=str(RATE_BURST),
            JOBUPDATES_MAX_STRIKES=str(MAX_STRIKES),
        )
        daphne, port = start_daphne(env)
        try:
            bridge = start_bridge(env)
            cookies = {
                STAFF[0]: login(port, *STAFF),
                PLAIN[0]: session_cookie(env, PLAIN[0]),
                VIEWER[0]: session_cookie(env, VIEWER[0]),
            }
            yield Secured(server, env, daphne, port, bridge, cookies)
            bridge.stop()
        finally:
            daphne.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- authentication and origin ----------------------------------------------------------------


async def test_anonymous_is_refused_with_4401(secured):
    async with ws_connect(secured.port) as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("unauthenticated", 4401)


def cross_site(port: int, cookie: str, origin: str) -> Any:
    """Open a WebSocket as a page of ``origin`` would, riding on the user's cookie."""
    return connect(
        f"ws://127.0.0.1:{port}/ws",
        origin=origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=10,
    )


async def test_a_foreign_origin_with_a_valid_session_cookie_is_refused(secured):
    """Cross-site WebSocket hijacking: another site's page rides on the user's cookie."""
    async with cross_site(secured.port, secured.cookies[STAFF[0]], "http://evil.example") as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("origin_not_allowed", 4403)
    async with ws_connect(secured.port, secured.cookies[STAFF[0]]) as ws:
        await welcomed(ws)  # the same cookie from the site's own origin is welcome


# -- authorization ----------------------------------------------------------------------------


async def test_only_users_with_the_permission_get_the_all_jobs_feed(secured):
    async with ws_connect(secured.port, secured.cookies[PLAIN[0]]) as plain:
        error, code = await closing_error(plain)
    assert (error["code"], code) == ("forbidden", 4403)
    job = unique("anyone")
    async with (
        ws_connect(secured.port, secured.cookies[VIEWER[0]]) as viewer,
        ws_connect(secured.port, secured.cookies[STAFF[0]]) as staff,
    ):
        await welcomed(viewer)
        await welcomed(staff)
        secured.publish(job)
        assert (await recv_json(viewer))["job_id"] == job
        assert (await recv_json(staff))["job_id"] == job


async def test_denied_job_subscriptions_get_job_forbidden(secured):
    path = f"/ws?job={unique('staff')}"
    async with ws_connect(secured.port, secured.cookies[PLAIN[0]], path) as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("job_forbidden", 4403)
    own = unique("plain")
    async with ws_connect(secured.port, secured.cookies[PLAIN[0]], f"/ws?job={own}") as ws:
        await welcomed(ws)
        denied = unique("viewer")
        await ws.send(json.dumps({"type": "subscribe", "job_ids": [denied]}))
        error = await recv_json(ws)
        assert (error["type"], error["code"]) == ("error", "job_forbidden")
        assert denied in error["message"]
        secured.publish(denied)
        secured.publish(own)
        assert (await recv_json(ws))["job_id"] == own, "expected the denied job not delivered"


async def test_an_allowed_job_subscription_delivers_only_that_job(secured):
    own, other, later = unique("plain"), unique("staff"), unique("plain")
    async with ws_connect(secured.port, secured.cookies[PLAIN[0]], f"/ws?job={own}") as ws:
        await welcomed(ws)
        secured.publish(other)
        secured.publish(own, "processing")
        frame = await recv_json(ws)
        assert (frame["type"], frame["job_id"], frame["status"]) == (
            "job_update",
            own,
            "processing",
        )
        await ws.send(json.dumps({"type": "subscribe", "job_ids": [later]}))
        assert await recv_json(ws) == {"type": "subscribed", "job_ids": [later]}
        secured.publish(other)
        secured.publish(later)
        assert (await recv_json(ws))["job_id"] == later


# -- limits -----------------------------------------------------------------------------------


async def test_a_message_flood_is_rate_limited_while_other_clients_still_get_updates(secured):
    async with (
        ws_connect(secured.port, secured.cookies[STAFF[0]]) as flooder,
        ws_connect(secured.port, secured.cookies[VIEWER[0]]) as other,
    ):
        await welcomed(flooder)
        await welcomed(other)
        for _ in range(RATE_BURST + MAX_STRIKES):
            await flooder.send('{"type":"ping"}')
        job = unique("during-flood")
        secured.publish(job)
        assert (await recv_json(other))["job_id"] == job
        for _ in range(RATE_BURST):
            assert await recv_json(flooder) == {"type": "pong"}
        for _ in range(MAX_STRIKES - 1):
            frame = await recv_json(flooder)
            assert (frame["type"], frame["code"]) == ("error", "rate_limited"), frame
        error, code = await closing_error(flooder)
        assert (error["code"], code) == ("rate_limited", 4429)
        await other.send('{"type":"ping"}')
        assert await recv_json(other) == {"type": "pong"}, "expected the other client unaffected"


async def test_an_oversized_frame_gets_an_error_and_a_2_mib_frame_closes_with_1009(secured):
    async with ws_connect(secured.port, secured.cookies[STAFF[0]]) as ws:
        client_id = await welcomed(ws)
        await ws.send(json.dumps({"type": "ping", "pad": "x" * 100_000}))
        frame = await recv_json(ws)
        assert (frame["type"], frame["code"]) == ("error", "frame_too_large")
        await ws.send('{"type":"ping"}')
        assert await recv_json(ws) == {"type": "pong"}, "expected the connection still open"
        with contextlib.suppress(ConnectionClosed):  # the close may come mid-send
            await ws.send("x" * (2 * 1024 * 1024))
        # over Daphne's websocket_max_message_size (1 MiB): refused at once, with the
        # reason, and a close frame (autobahn alone drops TCP: 1006, no reason)
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("frame_too_large", 1009), error
    assert "at most 1048576 bytes" in error["message"], error
    found = secured.daphne.wait_for(rf"client {client_id} disconnected \(code (\d+)\)")
    assert found.group(1) == "1009", "expected the consumer told, and its slot released"
    async with ws_connect(secured.port, secured.cookies[STAFF[0]]) as ws:
        await welcomed(ws)  # the server is unaffected


@pytest.fixture
def crowded(secured: Secured) -> Iterator[tuple[Process, int]]:
    """A second Daphne accepting 3 connections, at most 2 per user; yields it and its port."""
    env = {
        **secured.env,
        "JOBUPDATES_MAX_CONNECTIONS_PER_PROCESS": "3",
        "JOBUPDATES_MAX_CONNECTIONS_PER_USER": "2",
    }
    daphne, port = start_daphne(env)
    yield daphne, port
    daphne.stop()


async def test_connections_over_the_per_user_and_per_process_limits_are_refused(secured, crowded):
    staff, viewer = secured.cookies[STAFF[0]], secured.cookies[VIEWER[0]]
    daphne, port = crowded
    mark = daphne.mark()
    async with ws_connect(port, staff) as one, ws_connect(port, staff) as two:
        await welcomed(one)
        await welcomed(two)
        async with ws_connect(port, staff) as third:
            error, code = await closing_error(third)
        assert (error["code"], code) == ("too_many_connections", 4429)
        async with ws_connect(port, viewer) as other_user:
            await welcomed(other_user)  # another user still connects
            async with ws_connect(port, viewer) as fourth:
                error, code = await closing_error(fourth)
            assert (error["code"], code) == ("server_full", 4503)
            await other_user.send('{"type":"ping"}')
            assert await recv_json(other_user) == {"type": "pong"}
    # the three admitted clients' slots are given back as each one's teardown runs
    await asyncio.to_thread(
        daphne.wait_for_count, r"client [0-9a-f]{32} disconnected", 3, after=mark
    )
    async with ws_connect(port, viewer) as again:
        await welcomed(again)  # the slots are given back on disconnect


# -- tokens -----------------------------------------------------------------------------------


def mint_via_endpoint(port: int, cookie: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/ws/token",
        method="POST",
        headers={"Cookie": f"{cookie}; csrftoken={CSRF}", "X-CSRFToken": CSRF},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body


def token_connect(port: int, subprotocols: list[str]) -> Any:
    """Connect as a service: no cookie, no Origin, the token in Sec-WebSocket-Protocol."""
    return connect(
        f"ws://127.0.0.1:{port}/ws",
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=10,
    )


def test_the_endpoint_refuses_anonymous_and_cross_site_posts(secured):
    request = urllib.request.Request(f"http://127.0.0.1:{secured.port}/ws/token", method="POST")
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(request, timeout=10)
    assert anonymous.value.code == 401
    assert json.loads(anonymous.value.read())["error"] == "unauthenticated"
    request.add_header("Cookie", secured.cookies[STAFF[0]])  # a cookie, but no CSRF token
    with pytest.raises(urllib.error.HTTPError) as cross_site:
        urllib.request.urlopen(request, timeout=10)
    assert cross_site.value.code == 403
    assert json.loads(cross_site.value.read())["error"] == "csrf_failed"


async def test_a_minted_token_connects_once_without_cookie_or_origin(secured):
    minted = await asyncio.to_thread(mint_via_endpoint, secured.port, secured.cookies[STAFF[0]])
    assert minted["subprotocols"] == ["jobupdates.v1", f"token.{minted['token']}"]
    async with token_connect(secured.port, minted["subprotocols"]) as ws:
        assert ws.subprotocol == "jobupdates.v1", "expected the server to select jobupdates.v1"
        await welcomed(ws)
        job = unique("token")
        secured.publish(job)
        assert (await recv_json(ws))["job_id"] == job, "expected the token's user's updates"
    async with token_connect(secured.port, minted["subprotocols"]) as again:
        error, code = await closing_error(again)
    assert (error["code"], code) == ("invalid_token", 4401)
    assert "already used" in error["message"]


async def test_expired_and_forged_tokens_are_refused_with_4401(secured):
    minted = await asyncio.to_thread(mint_via_endpoint, secured.port, secured.cookies[STAFF[0]])
    with override_settings(SECRET_KEY=secured.env["DJANGO_SECRET_KEY"]):
        staff_pk = read_token(minted["token"], max_age=60).user_pk
        expired = sign_token(staff_pk, age=3600)
    with override_settings(SECRET_KEY="not-the-servers-key"):
        forged = sign_token(staff_pk, age=0)
    for token, says in ((expired, "expired"), (forged, "signed by this server")):
        async with token_connect(secured.port, ["jobupdates.v1", f"token.{token}"]) as ws:
            error, code = await closing_error(ws)
        assert (error["code"], code) == ("invalid_token", 4401)
        assert says in error["message"]


# -- issue [8], security findings -------------------------------------------------------------

FORGED = "a\nCRITICAL django.security.SuspiciousOperation: forged by a client"
LINE_BOUND = 1000
"""Longest log line a refused connection may cause, in characters."""
OLD_DEBUG_KEY = "django-insecure-development-only-key-do-not-use-in-production"
"""The key ``DEBUG`` used to fall back on, written in the source: public."""


@pytest.fixture
def wildcard_hosts(secured: Secured) -> Iterator[tuple[Process, int]]:
    """A Daphne with ``DJANGO_ALLOWED_HOSTS='*'`` and no JOBUPDATES_ALLOWED_ORIGINS."""
    daphne, port = start_daphne({**secured.env, "DJANGO_ALLOWED_HOSTS": "*"})
    yield daphne, port
    daphne.stop()


async def test_a_wildcard_allowed_host_does_not_let_other_sites_in(secured, wildcard_hosts):
    _daphne, port = wildcard_hosts
    async with cross_site(port, secured.cookies[STAFF[0]], "https://evil.example") as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("origin_not_allowed", 4403)
    check = run_manage({**secured.env, "DJANGO_ALLOWED_HOSTS": "*"}, "check")
    assert check.returncode == 0, check.stderr
    assert "jobupdates.W002" in check.stderr, check.stderr


def test_without_a_key_debug_off_refuses_to_start(secured, tmp_path):
    env = {k: v for k, v in secured.env.items() if k != "DJANGO_SECRET_KEY"}
    env["DJANGO_DEV_DATA_DIR"] = str(tmp_path)
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY: expected a secret key in the environment" in result.stderr
    assert not (tmp_path / "secret-key").exists(), "expected no key generated with DEBUG off"


async def test_debug_without_a_key_generates_a_private_one_and_refuses_the_public_one(
    secured, tmp_path
):
    minted = await asyncio.to_thread(mint_via_endpoint, secured.port, secured.cookies[STAFF[0]])
    with override_settings(SECRET_KEY=secured.env["DJANGO_SECRET_KEY"]):
        staff_pk = read_token(minted["token"], max_age=60).user_pk
    env = {k: v for k, v in secured.env.items() if k != "DJANGO_SECRET_KEY"}
    env.update(DJANGO_DEBUG="1", DJANGO_DEV_DATA_DIR=str(tmp_path))
    daphne, port = start_daphne(env)
    try:
        key_file = tmp_path / "secret-key"
        key = key_file.read_text().strip()
        assert key
        assert key != OLD_DEBUG_KEY
        assert key_file.stat().st_mode & 0o777 == 0o600
        with override_settings(SECRET_KEY=OLD_DEBUG_KEY):
            forged = sign_token(staff_pk, age=0)
        async with token_connect(port, ["jobupdates.v1", f"token.{forged}"]) as ws:
            error, code = await closing_error(ws)
        assert (error["code"], code) == ("invalid_token", 4401)
        assert "signed by this server" in error["message"]
        with override_settings(SECRET_KEY=key):
            genuine = sign_token(staff_pk, age=0)
        async with token_connect(port, ["jobupdates.v1", f"token.{genuine}"]) as ws:
            await welcomed(ws)  # the process signs with the key kept in the file
    finally:
        daphne.stop()


async def test_job_ids_cannot_forge_or_flood_log_lines(secured):
    long_ids = [f"{n:02}-" + "x" * 252 for n in range(50)]
    query = urllib.parse.urlencode([("job", FORGED), *(("job", job) for job in long_ids)])
    mark = secured.daphne.mark()
    async with ws_connect(secured.port, secured.cookies[PLAIN[0]], f"/ws?{query}") as ws:
        error, code = await closing_error(ws)
    assert (error["code"], code) == ("job_forbidden", 4403)
    assert "'a\\nCRITICAL django.security" in error["message"], "expected the job id escaped"
    secured.daphne.wait_for(r"refused a connection: job_forbidden", after=mark)
    secured.daphne.wait_for(r"WSDISCONNECT /ws", after=mark)  # every line of the attempt
    lines = secured.daphne.lines[mark:]
    assert not [line for line in lines if line.startswith("CRITICAL")], "\n".join(lines)
    longest = max(lines, key=len)
    assert len(longest) <= LINE_BOUND, f"expected lines of at most {LINE_BOUND}: {longest[:300]}"


@pytest.fixture
def fractional_ttl(secured: Secured) -> Iterator[int]:
    """A Daphne whose tokens live 1.99 s; yields its port."""
    daphne, port = start_daphne({**secured.env, "JOBUPDATES_TOKEN_TTL": "1.99"})
    yield port
    daphne.stop()


async def test_a_token_with_a_fractional_ttl_is_accepted_once(secured, fractional_ttl):
    """The used mark must outlive the token: ``ex=int(1.99)`` let it through again at 1 s."""
    minted = await asyncio.to_thread(mint_via_endpoint, fractional_ttl, secured.cookies[STAFF[0]])
    async with token_connect(fractional_ttl, minted["subprotocols"]) as ws:
        await welcomed(ws)
    with override_settings(SECRET_KEY=secured.env["DJANGO_SECRET_KEY"]):
        nonce = read_token(minted["token"], max_age=60).nonce
    client = redis.asyncio.Redis.from_url(secured.redis.url)
    key = f"botrix:jobs:token-used:{nonce}"
    try:
        assert await client.exists(key), "expected the first use marked"
        async with asyncio.timeout(10):
            while await client.exists(key):  # wait for the mark to expire
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()
    async with token_connect(fractional_ttl, minted["subprotocols"]) as again:
        error, code = await closing_error(again)
    assert (error["code"], code) == ("invalid_token", 4401)
    assert "expired" in error["message"], "expected the token dead before its mark"


async def test_a_position_beyond_64_bits_is_an_invalid_position(secured):
    path = "/ws?since=99999999999999999999-0"
    async with ws_connect(secured.port, secured.cookies[STAFF[0]], path) as ws:
        client_id = await welcomed(ws)
        raw = await asyncio.wait_for(ws.recv(), 5)
    reset = json.loads(raw)
    assert (reset["type"], reset["reason"]) == ("reset", "invalid_position"), reset
    assert "at most 18446744073709551615" in reset["message"]
    for leak in ("ERR", "Invalid stream ID", "botrix:jobs:history", "Error"):
        assert leak not in raw, f"expected no Redis error text, got {raw}"
    secured.daphne.wait_for(rf"client {client_id} disconnected")  # every earlier line is in
    assert not secured.daphne.matching(rf"client {client_id}: history unavailable")
