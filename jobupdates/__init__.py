"""Push job status updates from Redis to WebSocket clients through Django Channels.

When permissions change in an adopting app's own code, tell the open
connections: :func:`revoke` (the user's access is gone: close every connection)
and :func:`reauthorize` (judge them again: they lose what they may no longer
see). Both act on every server process at once; ``arevoke`` and
``areauthorize`` are their asynchronous forms. Django's own changes (logout,
deactivation, a password change, permissions and groups) are announced by the
app's signal handlers, and a periodic sweep catches the rest.
"""

from __future__ import annotations

from typing import Any

__all__ = ["areauthorize", "arevoke", "reauthorize", "revoke"]


def revoke(user: Any) -> None:
    """Close every connection of ``user`` (or its primary key), on every server process
    (``authentication_revoked``, 4401). From synchronous code."""
    from jobupdates.access.announce import revoke as _revoke

    _revoke(user)


def reauthorize(user: Any = None, job_id: str | None = None) -> None:
    """Judge again the connections of ``user`` (every user if None; only those that
    receive ``job_id`` if given), on every server process. From synchronous code."""
    from jobupdates.access.announce import reauthorize as _reauthorize

    _reauthorize(user, job_id)


async def arevoke(user: Any) -> None:
    """:func:`revoke`, from asynchronous code."""
    from jobupdates.access.announce import arevoke as _arevoke

    await _arevoke(user)


async def areauthorize(user: Any = None, job_id: str | None = None) -> None:
    """:func:`reauthorize`, from asynchronous code."""
    from jobupdates.access.announce import areauthorize as _areauthorize

    await _areauthorize(user, job_id)
