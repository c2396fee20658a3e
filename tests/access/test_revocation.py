"""One process's connections judged again: events act at once, the sweep catches the rest."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from jobupdates.access import announce
from jobupdates.access.revocation import Authorities
from jobupdates.protocol.authority import Action, AuthorityEvent, Grant, Op, Verdict
from tests.support.sessions import session_of

pytestmark = pytest.mark.django_db(transaction=True)  # judged in the database thread


class Connection:
    """A connection that records what happened to it."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.verdicts: list[Verdict] = []
        self.by: list[str] = []
        self.acted = asyncio.Event()

    async def revoked(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        self.acted.set()

    async def disconnected_by_staff(self, by: str) -> None:
        self.by.append(by)
        self.acted.set()


async def user(name: str, **fields: object) -> User:
    return await sync_to_async(User.objects.create_user)(name, password="pw-12345678", **fields)


async def held(authorities: Authorities, who: User, client: str, **grant: object) -> Connection:
    session = grant.pop("session", None)
    jobs = grant.pop("jobs", None)
    connection = Connection(client)
    authorities.add(
        connection,
        Grant(str(who.pk), session, who.get_session_auth_hash(), jobs),  # type: ignore[arg-type]
    )
    return connection


@pytest.fixture
async def authorities(settings):
    settings.JOBUPDATES_REAUTH_SECONDS = 0  # no sweep task: each test sweeps itself
    found = Authorities()
    yield found
    for task in found._tasks:
        task.cancel()


async def test_a_logout_closes_that_sessions_connections_only(authorities):
    ann = await user("ann", is_staff=True)
    first, second = [await sync_to_async(session_of)(ann) for _ in range(2)]
    a = await held(authorities, ann, "a", session=first)
    b = await held(authorities, ann, "b", session=second)
    await authorities.handle(AuthorityEvent(Op.REVOKE, session=first))
    assert [v.action for v in a.verdicts] == [Action.CLOSE_IDENTITY]
    assert (a.verdicts[0].why, b.verdicts) == ("logged out", [])
    assert list(authorities.entries) == ["b"]


async def test_a_revoked_user_loses_every_connection_and_a_staff_disconnect_says_who(authorities):
    ann, bob = await user("ann", is_staff=True), await user("bob", is_staff=True)
    a1, a2, b = [await held(authorities, u, c) for u, c in ((ann, "a1"), (ann, "a2"), (bob, "b"))]
    await authorities.handle(AuthorityEvent(Op.REVOKE, user=str(ann.pk)))
    assert [len(c.verdicts) for c in (a1, a2, b)] == [1, 1, 0]
    await authorities.handle(AuthorityEvent(Op.DISCONNECT, user=str(bob.pk), by="admin"))
    assert (b.by, authorities.entries) == (["admin"], {})


async def test_reauthorize_judges_the_named_connections_again(authorities):
    ann = await user("ann", is_staff=True)
    everything = await held(authorities, ann, "all")
    one_job = await held(authorities, ann, "job", jobs=frozenset({"j-1"}))
    await sync_to_async(User.objects.filter(pk=ann.pk).update)(is_staff=False)
    await authorities.handle(AuthorityEvent(Op.REAUTHORIZE, user=str(ann.pk), job="j-2"))
    assert (everything.verdicts[0].action, one_job.verdicts) == (Action.CLOSE_PERMISSION, [])
    await authorities.handle(AuthorityEvent(Op.REAUTHORIZE))
    assert one_job.verdicts[0].action is Action.CLOSE_PERMISSION


async def test_a_sweep_finds_what_no_signal_announced(authorities):
    ann, bob = await user("ann", is_staff=True), await user("bob", is_staff=True)
    a = await held(authorities, ann, "a", session=await sync_to_async(session_of)(ann))
    b = await held(authorities, bob, "b", session=await sync_to_async(session_of)(bob))
    assert await authorities.sweep() == 0
    await sync_to_async(User.objects.filter(pk=ann.pk).update)(is_active=False)
    assert await authorities.sweep() == 1
    assert (a.verdicts[0].why, b.verdicts) == ("the user was deactivated", [])


async def test_a_narrowed_connection_keeps_its_other_jobs(authorities, settings):
    settings.JOBUPDATES_JOB_AUTHORIZER = "tests.access.test_revalidation.only_even"
    ann = await user("ann")
    c = await held(authorities, ann, "c", jobs=frozenset({"j-2", "j-3"}))
    assert await authorities.sweep() == 1
    assert (c.verdicts[0].action, c.verdicts[0].jobs) == (Action.NARROW, frozenset({"j-3"}))
    assert authorities.entries["c"].grant.jobs == frozenset({"j-2"})
    assert await authorities.sweep() == 0, "judged once: it kept what it may see"


async def test_an_announcement_reaches_every_process_through_the_channel_layer(settings):
    settings.JOBUPDATES_REAUTH_SECONDS = 0
    ann = await user("ann", is_staff=True)
    processes = [Authorities(), Authorities()]
    connections = [await held(found, ann, f"c{n}") for n, found in enumerate(processes)]
    for found in processes:
        await asyncio.wait_for(found.listening.wait(), 5)
    await announce.arevoke(ann)
    for connection in connections:
        await asyncio.wait_for(connection.acted.wait(), 5)
        assert connection.verdicts[0].action is Action.CLOSE_IDENTITY
    for found in processes:
        for task in found._tasks:
            task.cancel()
