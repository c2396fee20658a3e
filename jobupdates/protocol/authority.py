"""What a connection may still receive, decided again after it was admitted.

Pure: no Django, asyncio, Redis or I/O. Each open connection keeps the
:class:`Grant` it was admitted with: whose it is, through which session or
token, and which jobs it receives. A re-validation (a sweep of every connection
of a server process, or a signal that names a user, a session or a job)
gathers the :class:`Facts` of many grants at once, and :func:`judge` decides
each connection's fate from them: keep it, narrow it to the jobs it may still
see, or close it, with 4401 when the identity is gone (logged out, session
deleted or expired, user deactivated or deleted, password changed) and 4403
when only the permission is.

A change made in any process (a logout, a save of a user, an explicit call)
reaches every server process as an :class:`AuthorityEvent`, the one schema of
that message.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AUTHORITY_EVENT",
    "Action",
    "AuthorityEvent",
    "Facts",
    "Grant",
    "MalformedAuthorityEvent",
    "Op",
    "UserFacts",
    "Verdict",
    "jobs_to_check",
    "judge",
]


@dataclass(frozen=True, slots=True)
class Grant:
    """What one connection was admitted with.

    Attributes:
        user: The user's primary key, as text.
        session: The session key it connected with (None for a token connection).
        auth_hash: The user's session auth hash when it connected (it changes with
            the password, which ends every session in Django).
        jobs: The jobs it receives; None for the all-jobs feed.
    """

    user: str
    session: str | None
    auth_hash: str
    jobs: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class UserFacts:
    """One user as the database has it now.

    Attributes:
        active: ``is_active``.
        auth_hash: The session auth hash now.
        all_jobs: Whether the user may receive every job.
    """

    active: bool
    auth_hash: str
    all_jobs: bool


@dataclass(frozen=True, slots=True)
class Facts:
    """What a re-validation found, for every grant it was asked about.

    Attributes:
        users: Each user that still exists.
        sessions: The session keys that are still valid (not deleted, not expired).
        denied: For each user, the jobs the job authorizer no longer grants.
    """

    users: Mapping[str, UserFacts] = field(default_factory=dict)
    sessions: frozenset[str] = frozenset()
    denied: Mapping[str, frozenset[str]] = field(default_factory=dict)


class Action(enum.Enum):
    """What happens to one connection."""

    KEEP = "keep"
    NARROW = "narrow"
    """It keeps only the jobs it may still see (``unsubscribed`` the others)."""
    CLOSE_IDENTITY = "close_identity"
    """Its identity is gone: 4401."""
    CLOSE_PERMISSION = "close_permission"
    """It may see nothing it receives: 4403."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """One connection's fate, and why (for its ``error`` frame and the log)."""

    action: Action
    why: str = ""
    jobs: frozenset[str] = frozenset()
    """With :attr:`Action.NARROW`, the jobs it loses."""


KEEP = Verdict(Action.KEEP)


def judge(grant: Grant, facts: Facts) -> Verdict:
    """Decide one connection's fate from what a re-validation found."""
    user = facts.users.get(grant.user)
    if user is None:
        return Verdict(Action.CLOSE_IDENTITY, "the user no longer exists")
    if not user.active:
        return Verdict(Action.CLOSE_IDENTITY, "the user was deactivated")
    if grant.session is not None and grant.session not in facts.sessions:
        return Verdict(Action.CLOSE_IDENTITY, "the session ended (logged out, deleted or expired)")
    if user.auth_hash != grant.auth_hash:
        return Verdict(Action.CLOSE_IDENTITY, "the password changed: every session ended")
    if grant.jobs is None:
        if user.all_jobs:
            return KEEP
        return Verdict(Action.CLOSE_PERMISSION, "no longer allowed to receive every job")
    denied = grant.jobs & facts.denied.get(grant.user, frozenset())
    if not denied:
        return KEEP
    if denied == grant.jobs:
        return Verdict(Action.CLOSE_PERMISSION, "no longer allowed to receive its jobs", denied)
    return Verdict(Action.NARROW, "no longer allowed to receive some of its jobs", denied)


def jobs_to_check(grants: Iterable[Grant]) -> dict[str, set[str]]:
    """Each user's jobs that connections receive by subscription (for the authorizer)."""
    wanted: dict[str, set[str]] = {}
    for grant in grants:
        if grant.jobs:
            wanted.setdefault(grant.user, set()).update(grant.jobs)
    return wanted


AUTHORITY_EVENT = "jobupdates.authority"
"""Channel-layer event type of a change of authority, sent to every server process."""


class Op(enum.StrEnum):
    """What an :class:`AuthorityEvent` asks every server process to do."""

    REVOKE = "revoke"
    """Close the connections of ``user`` or of ``session`` (4401): the identity is gone."""
    REAUTHORIZE = "reauthorize"
    """Judge again the connections of ``user`` (every one if None) and, with ``job``,
    only those that receive it."""
    DISCONNECT = "disconnect"
    """Close the connections of ``user`` as a staff member asked (4000)."""


class MalformedAuthorityEvent(ValueError):
    """An authority event without what its operation needs; it is dropped."""


@dataclass(frozen=True, slots=True)
class AuthorityEvent:
    """One change of authority, on its way to every server process (one schema).

    Attributes:
        op: What to do.
        user: The user's primary key, as text (None: every user, for ``reauthorize``).
        session: A session key (``revoke`` of one session: a logout).
        job: A job (``reauthorize`` of the connections that receive it).
        by: Who asked (``disconnect``), for the log and the error message.
    """

    op: Op
    user: str | None = None
    session: str | None = None
    job: str | None = None
    by: str = ""

    def to_event(self) -> dict[str, object]:
        """The channel-layer message."""
        return {
            "type": AUTHORITY_EVENT,
            "op": self.op.value,
            "user": self.user,
            "session": self.session,
            "job": self.job,
            "by": self.by,
        }

    @classmethod
    def from_event(cls, event: Mapping[str, object]) -> AuthorityEvent:
        """Read a channel-layer message back.

        Raises:
            MalformedAuthorityEvent: If the type or operation is unknown, a field is
                not a str (or absent), or ``revoke`` names neither a user nor a session.
        """
        if event.get("type") != AUTHORITY_EVENT:
            raise MalformedAuthorityEvent(
                f"expected a {AUTHORITY_EVENT!r} event, got type {event.get('type')!r:.60}"
            )
        try:
            op = Op(str(event.get("op")))
        except ValueError:
            known = ", ".join(o.value for o in Op)
            raise MalformedAuthorityEvent(
                f"expected 'op' to be one of {known}, got {event.get('op')!r:.60}"
            ) from None
        fields: dict[str, str | None] = {}
        for name in ("user", "session", "job"):
            value = event.get(name)
            if value is not None and not isinstance(value, str):
                raise MalformedAuthorityEvent(
                    f"expected {name!r} to be a str or absent, got {value!r:.60}"
                )
            fields[name] = value
        by = event.get("by", "")
        if not isinstance(by, str):
            raise MalformedAuthorityEvent(f"expected 'by' to be a str, got {by!r:.60}")
        if op is not Op.REAUTHORIZE and fields["user"] is None and fields["session"] is None:
            raise MalformedAuthorityEvent(f"expected a user or a session to {op.value}, got none")
        return cls(op, fields["user"], fields["session"], fields["job"], by)
