"""What no signal sees, caught by the re-validation sweep, end to end: Redis, two
Daphne processes, one bridge, a client of the user on each process (logged in
through the admin's form), and another user's client on each that keeps receiving.

A session row deleted with SQL, a session expired by ``QuerySet.update``, a user
deactivated by ``QuerySet.update``, and an authorizer's own data changed: none
sends a signal, so each is found by the sweep, every ``JOBUPDATES_REAUTH_SECONDS``
/ 2 (here 2 s: found within 1 s), and the servers' log says so ("found by the
sweep").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from harness.clients import login
from tests.support.revocation import Cluster, new_user, two_processes
from tests.support.revoked_sockets import (
    SLACK,
    check_narrowing,
    expect_closes,
    found_by,
    open_pair,
    still_receiving,
)

pytestmark = pytest.mark.e2e

REAUTH_SECONDS = 2.0
TIMEOUT = REAUTH_SECONDS + SLACK
SWEEP = "the sweep"
REVOKED = {"code": "authentication_revoked", "close_code": 4401, "timeout": TIMEOUT}
SESSION_ENDS = {
    "deleted_with_sql": (
        "with connection.cursor() as c:\n"
        "    c.execute('DELETE FROM django_session WHERE session_key = %s', [{key!r}])"
    ),
    "expired": (
        "import datetime\n"
        "Session.objects.filter(session_key={key!r})"
        ".update(expire_date=timezone.now() - datetime.timedelta(seconds=1))"
    ),
}
"""Ways a session ends that send no signal (``{key}``: its session key)."""


@pytest.fixture(scope="module")
def cluster(e2e_database: str) -> Iterator[Cluster]:
    with two_processes(
        e2e_database,
        JOBUPDATES_REAUTH_SECONDS=f"{REAUTH_SECONDS:g}",
        JOBUPDATES_JOB_AUTHORIZER="tests.e2e.authorizers.granted_in_redis",
    ) as running:
        yield running


@pytest.mark.parametrize("end", sorted(SESSION_ENDS))
async def test_a_session_ended_without_a_signal_is_found_by_the_sweep(cluster, request, end):
    user = new_user(cluster.django)
    port = cluster.servers["a"].port
    cookie, kept = login(port, user.name, user.password), login(port, user.name, user.password)
    code = SESSION_ENDS[end].format(key=cookie.removeprefix("sessionid="))
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        same_user = await open_pair(cluster, exits, kept)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, cluster.change(code), **REVOKED)
        for socket in sockets:
            found_by(cluster, socket, user, "close_identity", SWEEP)
        await still_receiving(cluster, [*others, *same_user])  # the other session stays


async def test_a_user_deactivated_by_queryset_update_is_found_by_the_sweep(cluster, request):
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    code = f"User.objects.filter(pk={user.pk}).update(is_active=False)"
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, cluster.change(code), **REVOKED)
        for socket in sockets:
            line = found_by(cluster, socket, user, "close_identity", SWEEP)
            assert "the user was deactivated" in line
        await still_receiving(cluster, others)


async def test_an_authorizers_own_data_is_found_by_the_sweep(cluster, request):
    await check_narrowing(
        cluster, request.node.name, announced=False, source=SWEEP, timeout=TIMEOUT
    )
