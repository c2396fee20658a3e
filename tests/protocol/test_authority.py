"""A connection judged again after it was admitted, and the event that asks for it (pure)."""

from __future__ import annotations

import re

import pytest

from jobupdates.protocol.authority import (
    AUTHORITY_EVENT,
    Action,
    AuthorityEvent,
    Facts,
    Grant,
    MalformedAuthorityEvent,
    Op,
    UserFacts,
    jobs_to_check,
    judge,
)

ALL = Grant("1", "s1", "hash")
JOBS = Grant("1", None, "hash", frozenset({"a", "b"}))


def facts(**user: object) -> Facts:
    found = {"active": True, "auth_hash": "hash", "all_jobs": True, **user}
    return Facts({"1": UserFacts(**found)}, frozenset({"s1"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grant", "found", "action", "why"),
    [
        (ALL, facts(), Action.KEEP, ""),
        (ALL, Facts(), Action.CLOSE_IDENTITY, "no longer exists"),
        (ALL, facts(active=False), Action.CLOSE_IDENTITY, "deactivated"),
        (ALL, Facts(facts().users, frozenset()), Action.CLOSE_IDENTITY, "session ended"),
        (ALL, facts(auth_hash="new"), Action.CLOSE_IDENTITY, "password changed"),
        (ALL, facts(all_jobs=False), Action.CLOSE_PERMISSION, "every job"),
        (JOBS, facts(all_jobs=False), Action.KEEP, ""),  # a token: no session to end
    ],
)
def test_a_connection_is_kept_or_closed_by_what_the_database_says_now(grant, found, action, why):
    verdict = judge(grant, found)
    assert verdict.action is action
    assert why in verdict.why


def test_a_connection_keeps_only_the_jobs_it_may_still_see():
    some = Facts(facts().users, frozenset(), {"1": frozenset({"a", "z"})})
    verdict = judge(JOBS, some)
    assert (verdict.action, verdict.jobs) == (Action.NARROW, frozenset({"a"}))
    every = Facts(facts().users, frozenset(), {"1": frozenset({"a", "b"})})
    assert judge(JOBS, every).action is Action.CLOSE_PERMISSION


def test_the_authorizer_is_asked_only_about_subscribed_jobs():
    grants = [
        JOBS,
        ALL,
        Grant("2", None, "h", frozenset({"c"})),
        Grant("3", None, "h", frozenset()),
    ]
    assert jobs_to_check(grants) == {"1": {"a", "b"}, "2": {"c"}}


@pytest.mark.parametrize(
    "event",
    [
        AuthorityEvent(Op.REVOKE, user="7"),
        AuthorityEvent(Op.REVOKE, session="abc"),
        AuthorityEvent(Op.REAUTHORIZE),
        AuthorityEvent(Op.REAUTHORIZE, user="7", job="j-1"),
        AuthorityEvent(Op.DISCONNECT, user="7", by="admin"),
    ],
)
def test_an_authority_event_round_trips(event):
    message = event.to_event()
    assert message["type"] == AUTHORITY_EVENT
    assert AuthorityEvent.from_event(message) == event


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            {"type": "other", "op": "revoke"},
            "expected a 'jobupdates.authority' event, got type 'other'",
        ),
        (
            {"type": AUTHORITY_EVENT, "op": "erase"},
            "expected 'op' to be one of revoke, reauthorize, disconnect, got 'erase'",
        ),
        (
            {"type": AUTHORITY_EVENT, "op": "revoke", "user": 7},
            "expected 'user' to be a str or absent, got 7",
        ),
        (
            {"type": AUTHORITY_EVENT, "op": "revoke"},
            "expected a user or a session to revoke, got none",
        ),
        (
            {"type": AUTHORITY_EVENT, "op": "disconnect", "user": "1", "by": 3},
            "expected 'by' to be a str, got 3",
        ),
    ],
)
def test_a_malformed_authority_event_says_what_was_expected(message, expected):
    with pytest.raises(MalformedAuthorityEvent, match=f"^{re.escape(expected)}$"):
        AuthorityEvent.from_event(message)
