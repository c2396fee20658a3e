"""Telling every server process that a user's or a session's authority changed.

The calls an adopting app makes when permissions change in its own code, and
that :mod:`jobupdates.access.signals` makes on Django's own changes. Each sends
one :class:`~jobupdates.protocol.authority.AuthorityEvent` to the channel-layer
group every server process joins (:mod:`jobupdates.access.revocation`), so it
acts at once, on every process. The periodic sweep catches what no call or
signal announces, within ``JOBUPDATES_REAUTH_SECONDS``.

Each has a synchronous form (views, signal handlers, management commands) and
an asynchronous one (``a`` prefix). A failure to send (the channel layer is
down) is logged, never raised: the change itself must not fail for it, and the
sweep still catches it.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from jobupdates.access.revocation import AUTHORITY_GROUP
from jobupdates.protocol.authority import AuthorityEvent, Op

__all__ = [
    "adisconnect_user",
    "areauthorize",
    "arevoke",
    "disconnect_user",
    "reauthorize",
    "revoke",
    "revoke_session",
]

logger = logging.getLogger(__name__)


def _pk(user: Any) -> str | None:
    """A user object's primary key (or a primary key as given), as text."""
    if user is None:
        return None
    return str(getattr(user, "pk", user))


async def announce(event: AuthorityEvent) -> None:
    """Send ``event`` to every server process; log, never raise, if it cannot be sent."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(AUTHORITY_GROUP, event.to_event())
    except Exception as exc:  # the sweep catches what this could not announce
        logger.warning(
            "could not announce %s of user %s (%s: %s); the re-validation sweep will catch it",
            event.op.value,
            event.user,
            type(exc).__name__,
            exc,
        )


async def arevoke(user: Any) -> None:
    """Close every connection of ``user`` (a user or its primary key), on every
    process: ``authentication_revoked``, 4401."""
    await announce(AuthorityEvent(Op.REVOKE, user=_pk(user)))


async def areauthorize(user: Any = None, job_id: str | None = None) -> None:
    """Judge again the connections of ``user`` (every user if None), only those that
    receive ``job_id`` if given: they lose what they may no longer see (4403 or
    ``unsubscribed``), or their connection if their identity is gone (4401)."""
    await announce(AuthorityEvent(Op.REAUTHORIZE, user=_pk(user), job=job_id))


async def adisconnect_user(user: Any, by: str = "") -> None:
    """Close every connection of ``user`` as a staff member asked (``by``): 4000."""
    await announce(AuthorityEvent(Op.DISCONNECT, user=_pk(user), by=by))


def revoke(user: Any) -> None:
    """:func:`arevoke`, from synchronous code."""
    async_to_sync(arevoke)(user)


def reauthorize(user: Any = None, job_id: str | None = None) -> None:
    """:func:`areauthorize`, from synchronous code."""
    async_to_sync(areauthorize)(user, job_id)


def disconnect_user(user: Any, by: str = "") -> None:
    """:func:`adisconnect_user`, from synchronous code."""
    async_to_sync(adisconnect_user)(user, by)


def revoke_session(session_key: str) -> None:
    """Close the connections of one session (a logout), on every process: 4401."""
    async_to_sync(announce)(AuthorityEvent(Op.REVOKE, session=session_key))
