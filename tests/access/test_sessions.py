"""The session's user: Django's own lookup, many handshakes per thread hop."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from jobupdates.access import sessions
from jobupdates.access.sessions import SessionUsers, session_user
from tests.support.sessions import session_of

pytestmark = pytest.mark.django_db(transaction=True)  # the lookups run in the database thread


@pytest.fixture
def hops(monkeypatch):
    """The keys of each trip to the database thread."""
    trips: list[list[str]] = []
    users = sessions._users

    def counted(keys: list[str]):
        trips.append(list(keys))
        return users(keys)

    monkeypatch.setattr(sessions, "_users", counted)
    return trips


async def test_handshakes_of_the_moment_share_one_trip_and_each_gets_its_user(hops):
    from django.contrib.auth.models import User

    ann = await sync_to_async(User.objects.create_user)("ann", password="pw-12345678")
    bob = await sync_to_async(User.objects.create_user)("bob", password="pw-12345678")
    keys = [await sync_to_async(session_of)(u) for u in (ann, bob, ann, bob)]
    users = SessionUsers()
    first = await users(keys[0])  # alone: at once
    found = await asyncio.gather(*(users(key) for key in [*keys, "unknown-key"]))
    assert first.pk == ann.pk
    assert [u.pk for u in found[:4]] == [ann.pk, bob.pk, ann.pk, bob.pk]
    assert not found[4].is_authenticated
    assert hops == [keys[:1], [*keys, "unknown-key"]]


async def test_a_lookup_that_raises_fails_its_handshake_only(monkeypatch):
    def lookup(key: str):
        if key == "bad":
            raise RuntimeError("database is locked")
        return key.upper()

    monkeypatch.setattr(sessions, "session_user", lookup)
    users = SessionUsers()
    found = await asyncio.gather(users("a"), users("bad"), users("b"), return_exceptions=True)
    assert (found[0], found[2]) == ("A", "B")
    assert isinstance(found[1], RuntimeError)
    assert "database is locked" in str(found[1])


async def test_a_cancelled_handshake_leaves_the_others_their_users(monkeypatch, hops):
    monkeypatch.setattr(sessions, "session_user", str.upper)
    users = SessionUsers()
    first = asyncio.ensure_future(users("a"))
    await asyncio.sleep(0)  # its trip is under way; the next two wait for the next
    gone = asyncio.ensure_future(users("b"))
    kept = asyncio.ensure_future(users("c"))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first, await kept) == ("A", "C")
    assert gone.cancelled()


async def test_a_failed_trip_fails_every_handshake_waiting_on_it(monkeypatch):
    def broken(keys: list[str]):
        raise OSError("thread pool gone")

    monkeypatch.setattr(sessions, "_users", broken)
    users = SessionUsers()
    found = await asyncio.gather(users("a"), users("b"), return_exceptions=True)
    assert [type(e) for e in found] == [OSError, OSError]
    monkeypatch.undo()
    monkeypatch.setattr(sessions, "session_user", str.upper)
    assert await users("c") == "C", "expected the next handshake to be served"


def test_no_key_is_anonymous():
    assert not session_user(None).is_authenticated
    assert not session_user("").is_authenticated
