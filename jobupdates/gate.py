"""Who may connect, and to what: the checks a connection passes before accept.

:func:`admit` reads what the middleware recorded in the scope (token errors,
the origin check, the user), parses the connect query, asks the permission
policy, and counts the connection against the process's limits. It returns
an :class:`Admitted` connection, or the :data:`Refusal` the consumer sends
as an error frame and a close code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async

from jobupdates import permissions
from jobupdates.admission import admission
from jobupdates.auth import AUTH_ERROR, ORIGIN_OK
from jobupdates.conf import conf
from jobupdates.protocol import CloseCode, ErrorCode, FrameError
from jobupdates.protocol.connect import ConnectRequest, parse_connect_query

__all__ = ["Admitted", "Refusal", "admit", "forbidden_jobs"]

Refusal = tuple[ErrorCode, str, CloseCode]
"""What to refuse a connection with: error code, message, close code."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """A connection that passed: what it asked for, and whom it counts against."""

    request: ConnectRequest
    user_key: str | None


async def admit(scope: dict[str, Any]) -> Admitted | Refusal:
    """Check a connection in order: token, origin, login, query, permissions, limits.

    A connection that is admitted is counted in
    :data:`jobupdates.admission.admission`; release it on disconnect.
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
        message = f"not allowed to receive job(s) {', '.join(denied)}"
        return ErrorCode.JOB_FORBIDDEN, message, CloseCode.FORBIDDEN
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
