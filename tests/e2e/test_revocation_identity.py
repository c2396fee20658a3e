"""Live revocation of an identity, end to end, at once: Redis, two Daphne processes,
one bridge, a client of the user on each process (logged in through the admin's
form), and another user's client on each that keeps receiving.

A logout through the admin, a session deleted through the ORM, a user deactivated,
deleted or given a new password, and ``jobupdates.revoke(user)`` close each socket
of that session or user with ``authentication_revoked``, 4401, also a token's; the
admin's "disconnect every connection of the selected clients' users" closes them
with 4000. Each trigger here is announced (a signal, an explicit call, the admin's
action), and the sweep is as good as off (``JOBUPDATES_REAUTH_SECONDS`` = 3600):
only the announcement can close the sockets, and the servers' log says so ("found
by an announced ..."). What no signal sees is in ``test_revocation_sweep``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Iterator

import pytest

from harness.clients import login
from tests.support.admin_forms import admin_action, admin_logout
from tests.support.revocation import Cluster, new_user, two_processes
from tests.support.revoked_sockets import (
    SIGNAL_BOUND,
    SLACK,
    expect_closes,
    found_by,
    open_pair,
    open_socket,
    still_receiving,
)

pytestmark = pytest.mark.e2e

TIMEOUT = SIGNAL_BOUND + SLACK
REVOKED = {"code": "authentication_revoked", "close_code": 4401, "timeout": TIMEOUT}


@pytest.fixture(scope="module")
def cluster(e2e_database: str) -> Iterator[Cluster]:
    with two_processes(e2e_database, JOBUPDATES_REAUTH_SECONDS="3600") as running:
        yield running


def session_key(cookie: str) -> str:
    return cookie.removeprefix("sessionid=")


async def test_a_logout_through_the_admin_closes_that_sessions_sockets(cluster, request):
    user = new_user(cluster.django)
    port = cluster.servers["a"].port
    cookie, kept = login(port, user.name, user.password), login(port, user.name, user.password)
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        same_user = await open_pair(cluster, exits, kept)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        logout = functools.partial(admin_logout, cluster.servers["b"].port, cookie)
        await expect_closes(request.node.name, sockets, logout, **REVOKED)
        for socket in sockets:
            found_by(cluster, socket, user, "close_identity", "an announced revoke")
        await still_receiving(cluster, [*others, *same_user])  # the other session stays


async def test_a_session_deleted_through_the_orm_closes_its_sockets(cluster, request):
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    delete = f"Session.objects.filter(session_key={session_key(cookie)!r}).delete()"
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, cluster.change(delete), **REVOKED)
        for socket in sockets:
            found_by(cluster, socket, user, "close_identity", "an announced revoke")
        await still_receiving(cluster, others)


USER_CHANGES = {
    "deactivated": ("u.is_active = False; u.save()", "reauthorize", "the user was deactivated"),
    "password_changed": ("u.set_password('pw-new-2'); u.save()", "reauthorize", "password"),
    "deleted": ("u.delete()", "revoke", "the user's access was revoked"),
    "jobupdates_revoke": ("jobupdates.revoke(u)", "revoke", "the user's access was revoked"),
}
"""A change of the user (``u``), the announcement it makes, and the reason logged."""


@pytest.mark.parametrize("change", sorted(USER_CHANGES))
async def test_a_change_of_the_user_closes_every_socket_of_theirs(cluster, request, change):
    code, announced, why = USER_CHANGES[change]
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    trigger = cluster.change(f"u = User.objects.get(pk={user.pk}); {code}")
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, trigger, **REVOKED)
        for socket in sockets:
            line = found_by(cluster, socket, user, "close_identity", f"an announced {announced}")
            assert why in line
        await still_receiving(cluster, others)


async def test_a_token_connection_closes_when_its_user_is_deactivated(cluster, request):
    user = new_user(cluster.django)
    mint = (
        "from jobupdates.access.minting import mint\n"
        "from jobupdates.conf import conf\n"
        f"result = [mint({user.pk}, ttl=30, max_ttl=conf.TOKEN_TTL).token for _ in 'ab']"
    )
    tokens = cluster.django.run(mint).result
    save = f"u = User.objects.get(pk={user.pk}); u.is_active = False; u.save()"
    async with contextlib.AsyncExitStack() as exits:
        sockets = [
            await open_socket(cluster, exits, server, token=token)
            for server, token in zip(cluster.servers, tokens, strict=True)
        ]
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, cluster.change(save), **REVOKED)
        for socket in sockets:
            found_by(cluster, socket, user, "close_identity", "an announced reauthorize")
        await still_receiving(cluster, others)


async def test_the_admin_disconnects_every_connection_of_a_user(cluster, request):
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        # staff select the user's client on "a" in the list, posting to "b"
        disconnect = functools.partial(
            admin_action,
            cluster.servers["b"].port,
            cluster.other_cookie,
            "disconnect_users",
            sockets[0].client_id,
        )
        await expect_closes(
            request.node.name,
            sockets,
            disconnect,
            code="disconnected_by_staff",
            close_code=4000,
            timeout=TIMEOUT,
        )
        b = cluster.servers["b"].process
        b.wait_for(rf"'staff' disconnected every connection of user {user.pk}$", timeout=5)
        for socket in sockets:
            process = cluster.servers[socket.server].process
            line = rf"client {re.escape(socket.client_id)} disconnected by staff \('staff'\)"
            await asyncio.to_thread(process.wait_for, line, timeout=5)
        await still_receiving(cluster, others)  # staff's own, and every other user's, stay
