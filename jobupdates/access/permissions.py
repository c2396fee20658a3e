"""Who may receive what: the all-jobs feed, and one job's updates.

Both run in a worker thread (they may query the database). An adopting
project replaces the per-job rule with ``JOBUPDATES_JOB_AUTHORIZER``: the
dotted path of a callable ``(user, job_id) -> bool``, for example one that
checks the job belongs to the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.utils.module_loading import import_string

from jobupdates.conf import conf

__all__ = ["all_jobs_without_database", "can_view_all_jobs", "can_view_job", "forbidden_jobs"]


def all_jobs_without_database(user: Any) -> bool | None:
    """Decide :func:`can_view_all_jobs` if that needs no query; None if it does."""
    if not getattr(user, "is_authenticated", False):
        return not conf.REQUIRE_AUTH and not conf.ALL_JOBS_PERMISSION
    if user.is_staff or not conf.ALL_JOBS_PERMISSION:
        return True
    return None


def can_view_all_jobs(user: Any) -> bool:
    """Staff, and users with ``JOBUPDATES_ALL_JOBS_PERMISSION``, receive every job."""
    decided = all_jobs_without_database(user)
    if decided is not None:
        return decided
    return bool(user.has_perm(conf.ALL_JOBS_PERMISSION))


def can_view_job(user: Any, job_id: str) -> bool:
    """The default per-job rule: only users who may receive every job."""
    return can_view_all_jobs(user)


def forbidden_jobs(user: Any, job_ids: Iterable[str]) -> list[str]:
    """Return the jobs of ``job_ids`` that ``user`` may not receive."""
    authorize: Callable[[Any, str], bool] = import_string(conf.JOB_AUTHORIZER)
    return [job_id for job_id in job_ids if not authorize(user, job_id)]
