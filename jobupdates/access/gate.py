"""Who may connect, and to what: the checks a connection passes before accept.

:func:`admit` reads what the middleware recorded in the scope (token errors,
the origin check, the user), parses the connect query, asks the permission
policy, and counts the connection against the process's limits. It returns
an :class:`Admitted` connection, or the :data:`Refusal` the consumer sends
as an error frame and a close code.

Refusal messages name what the client sent only through
:func:`jobupdates.protocol.logs.loggable` (escaped and truncated): they are
logged, and a job id is any text up to 255 characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async

from jobupdates.access import permissions
from jobupdates.access.admission import admission
from jobupdates.access.middleware import AUTH_ERROR, ORIGIN_OK
from jobupdates.conf import conf
from jobupdates.protocol import CloseCode, ErrorCode, FrameError
from jobupdates.protocol.connect import ConnectRequest, parse_connect_query
from jobupdates.protocol.logs import loggable

__all__ = ["Admitted", "Refusal", "admit", "forbidden_jobs", "job_forbidden_message"]

Refusal = tuple[ErrorCode, str, CloseCode]
"""What to refuse a connection with: error code, message, close code."""

JOBS_NAMED = 5
"""Denied jobs named in a ``job_forbidden`` message; the rest are counted."""
JOB_ID_LIMIT = 60
"""Characters of each named job id's ``repr`` kept in a message."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A connection that passed: what it asked for, and whom it counts against."""

    request: ConnectRequest
    user_key: str | None


async def admit(scope: dict[str, Any]) -> Admitted | Refusal:
    """Check a connection in order: token, origin, login, query, permissions, limits.

    A connection that is admitted is counted in
    :data:`jobupdates.access.admission.admission`; release it on disconnect.
    """
    if scope.get(AUTH_ERROR):
        return ErrorCode.INVALID_TOKEN, scope[AUTH_ERROR], CloseCode.UNAUTHENTICATED
    if not scope.get(ORIGIN_OK, False):
        message = "expected a page on an allowed origin, or a token"
        return ErrorCode.ORIGIN_NOT_ALLOWED, message, CloseCode.FORBIDDEN
    user = scope.get("user")
    authenticated = bool(getattr(user, "is_authenticated", False))
    if conf.REQUIRE_AUTH and not authenticated:
        return ErrorCode.UNAUTHENTICATED, "log in to receive job updates", CloseCode.UNAUTHENTICATED
    try:
        request = parse_connect_query(scope.get("query_string", b""))
    except FrameError as exc:
        return exc.code, exc.detail, CloseCode.PROTOCOL_ERROR
    jobs = request.job_ids
    if len(jobs) > conf.MAX_SUBSCRIPTIONS:
        message = f"expected at most {conf.MAX_SUBSCRIPTIONS} jobs, got {len(jobs)}"
        return ErrorCode.TOO_MANY_SUBSCRIPTIONS, message, CloseCode.PROTOCOL_ERROR
    if not jobs and not await _may_view_all_jobs(user):
        message = "not allowed to receive every job; subscribe to your jobs with ?job=<id>"
        return ErrorCode.FORBIDDEN, message, CloseCode.FORBIDDEN
    denied = await forbidden_jobs(user, jobs)
    if denied:
        return ErrorCode.JOB_FORBIDDEN, job_forbidden_message(denied), CloseCode.FORBIDDEN
    user_key = str(user.pk) if authenticated and user is not None else None
    limit = admission.admit(
        user_key,
        max_total=conf.MAX_CONNECTIONS_PER_PROCESS,
        max_per_user=conf.MAX_CONNECTIONS_PER_USER,
    )
    if limit is ErrorCode.SERVER_FULL:
        return limit, "this server is full; try again later", CloseCode.SERVER_FULL
    if limit is not None:
        message = f"expected at most {conf.MAX_CONNECTIONS_PER_USER} connections per user"
        return limit, message, CloseCode.RATE_LIMITED
    return Admitted(request, user_key)


def job_forbidden_message(denied: Sequence[str]) -> str:
    """Say which jobs were denied: at most ``JOBS_NAMED``, each escaped and truncated.

    >>> job_forbidden_message(["j-1", "a\\nCRITICAL"])
    "not allowed to receive job(s) 'j-1', 'a\\\\nCRITICAL'"
    """
    named = ", ".join(loggable(job, JOB_ID_LIMIT) for job in denied[:JOBS_NAMED])
    more = len(denied) - JOBS_NAMED
    return f"not allowed to receive job(s) {named}" + (f" and {more} more" if more > 0 else "")


async def _may_view_all_jobs(user: Any) -> bool:
    """Ask the policy, in a worker thread only if it has to query the database."""
    decided = permissions.all_jobs_without_database(user)
    if decided is None:
        decided = bool(await database_sync_to_async(permissions.can_view_all_jobs)(user))
    return decided


async def forbidden_jobs(user: Any, job_ids: tuple[str, ...]) -> list[str]:
    """Ask the per-job policy (in a worker thread) which of ``job_ids`` are denied."""
    if not job_ids:
        return []
    denied: list[str] = await database_sync_to_async(permissions.forbidden_jobs)(user, job_ids)
    return denied
