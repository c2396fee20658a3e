"""Live revocation of a permission, end to end, at once: Redis, two Daphne processes,
one bridge, a client of the user on each process (logged in through the admin's
form), and another user's client on each that keeps receiving.

* The all-jobs feed needs ``jobupdates.view_all_jobs`` (directly or through a
  group), ``is_staff``, or ``is_superuser`` (which has every permission):
  losing the last of them closes it with ``permission_revoked``, 4403.
* A per-job subscriber whose ``JOBUPDATES_JOB_AUTHORIZER`` no longer grants
  some of its jobs loses those (``unsubscribed``, ``permission_revoked``) and
  keeps the others; one granted none is closed with 4403. The authorizer here
  reads a Redis set (:func:`tests.e2e.authorizers.granted_in_redis`) that the
  test changes, then calls ``jobupdates.reauthorize``, as an adopting app would.

The sweep is as good as off (``JOBUPDATES_REAUTH_SECONDS`` = 3600): only the
announcement can act, and the servers' log says so.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from harness.clients import login
from tests.support.revocation import Cluster, demote, grant, new_user, two_processes
from tests.support.revoked_sockets import (
    SIGNAL_BOUND,
    SLACK,
    check_narrowing,
    expect_closes,
    found_by,
    open_pair,
    still_receiving,
)

pytestmark = pytest.mark.e2e

TIMEOUT = SIGNAL_BOUND + SLACK
FORBIDDEN = {"code": "permission_revoked", "close_code": 4403, "timeout": TIMEOUT}
ANNOUNCED = "an announced reauthorize"


@pytest.fixture(scope="module")
def cluster(e2e_database: str) -> Iterator[Cluster]:
    with two_processes(
        e2e_database,
        JOBUPDATES_REAUTH_SECONDS="3600",
        JOBUPDATES_JOB_AUTHORIZER="tests.e2e.authorizers.granted_in_redis",
    ) as running:
        yield running


LOSSES: dict[str, tuple[dict[str, Any], str]] = {
    "permission_removed": (
        {"staff": False, "permission": True},
        "u.user_permissions.remove(VIEW_ALL_JOBS)",
    ),
    "group_lost_the_permission": (
        {"staff": False, "group": True},
        "Group.objects.get(name={group!r}).permissions.remove(VIEW_ALL_JOBS)",
    ),
    "removed_from_the_group": (
        {"staff": False, "group": True},
        "u.groups.remove(Group.objects.get(name={group!r}))",
    ),
    "no_longer_staff": ({"staff": True}, "u.is_staff = False; u.save()"),
    "no_longer_superuser": (
        {"staff": False, "superuser": True},
        "u.is_superuser = False; u.save()",
    ),
}
"""How a user has the all-jobs feed (``group``: through a group of its own), and the
change that takes it away (``u``: the user, ``{group}``: the group's name)."""


@pytest.mark.parametrize("loss", sorted(LOSSES))
async def test_losing_the_all_jobs_permission_closes_the_feed(cluster, request, loss):
    how, change = LOSSES[loss]
    group = f"rv-group-{uuid.uuid4().hex[:8]}"
    flags = {**how, "staff": True, "group": group if how.get("group") else None}
    user = new_user(cluster.django, **flags)  # staff, to log in through the admin's form
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    if not how["staff"]:
        demote(cluster.django, user)
    code = f"u = User.objects.get(pk={user.pk}); " + change.format(group=group)
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie)
        others = await open_pair(cluster, exits, cluster.other_cookie)
        await expect_closes(request.node.name, sockets, cluster.change(code), **FORBIDDEN)
        for socket in sockets:
            found_by(cluster, socket, user, "close_permission", ANNOUNCED)
        await still_receiving(cluster, others)


async def test_a_job_the_authorizer_no_longer_grants_is_unsubscribed(cluster, request):
    await check_narrowing(
        cluster, request.node.name, announced=True, source=ANNOUNCED, timeout=TIMEOUT
    )


async def test_a_subscriber_granted_none_of_its_jobs_is_closed(cluster, request):
    user = new_user(cluster.django)
    cookie = login(cluster.servers["a"].port, user.name, user.password)
    demote(cluster.django, user)
    jobs = (f"{user.name}-1", f"{user.name}-2")
    grant(cluster, user, *jobs)
    async with contextlib.AsyncExitStack() as exits:
        sockets = await open_pair(cluster, exits, cookie, path=f"/ws?job={jobs[0]}&job={jobs[1]}")
        others = await open_pair(cluster, exits, cluster.other_cookie)
        grant(cluster, user, *jobs, revoke=True)
        reauthorize = f"jobupdates.reauthorize({user.pk})"
        await expect_closes(request.node.name, sockets, cluster.change(reauthorize), **FORBIDDEN)
        for socket in sockets:
            found_by(cluster, socket, user, "close_permission", ANNOUNCED)
        await still_receiving(cluster, others)
