"""What the database says now of many connections' grants, in a few queries.

:func:`gather` runs in a worker thread (it queries the database) and answers
for every :class:`~jobupdates.protocol.authority.Grant` it is given at once,
with queries per :data:`CHUNK` grants, never per connection:

* users: one query per chunk of user ids (``is_active``, and the session auth
  hash, which changes with the password);
* sessions: with a database-backed engine (``db``, ``cached_db``), one count
  per chunk of session keys of those not deleted nor expired, and only when
  some are, the keys of that chunk (a row per session read in a worker thread
  costs a GIL hand-over each while the event loop is busy: 10,000 of them took
  a sweep from 0.15 s to 50-120 s under load); with the
  ``cache`` engine, one ``get_many``; with another engine, each session is
  loaded (``SessionStore.load``), still in the same thread hop;
* the all-jobs permission: decided without a query for staff, superusers and
  when no permission is configured; else, with Django's ``ModelBackend`` alone,
  one query per chunk (the permission directly or through a group); with other
  backends, ``has_perm`` once per user;
* per-job access: with the default rule (the all-jobs permission) nothing more;
  with ``JOBUPDATES_JOB_AUTHORIZER``, the authorizer once per user and job.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from importlib import import_module
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from jobupdates.access import permissions
from jobupdates.conf import conf
from jobupdates.protocol.authority import Facts, Grant, UserFacts, jobs_to_check

__all__ = ["CHUNK", "gather"]

CHUNK = 500
"""Ids or keys per query (well under every database's limit of bound parameters)."""
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
DEFAULT_AUTHORIZER = "jobupdates.access.permissions.can_view_job"

T = TypeVar("T")


def gather(grants: Sequence[Grant]) -> Facts:
    """The facts every grant of ``grants`` is judged on (in a worker thread)."""
    users = _users({grant.user for grant in grants})
    sessions = _live_sessions({grant.session for grant in grants if grant.session})
    all_jobs = _all_jobs(users)
    facts_users = {
        pk: UserFacts(bool(user.is_active), _auth_hash(user), all_jobs[pk])
        for pk, user in users.items()
    }
    return Facts(facts_users, frozenset(sessions), _denied(users, all_jobs, grants))


def chunks(items: Iterable[T], size: int | None = None) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (:data:`CHUNK`)."""
    size = size or CHUNK
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _users(pks: Collection[str]) -> dict[str, Any]:
    manager = get_user_model()._default_manager
    found: dict[str, Any] = {}
    for batch in chunks(sorted(pks)):
        for user in manager.filter(pk__in=batch):
            found[str(user.pk)] = user
    return found


_hashes: dict[tuple[str, str], str] = {}
"""Session auth hashes by user and password hash: one HMAC per password, not per sweep."""


def _auth_hash(user: Any) -> str:
    key = (str(user.pk), str(getattr(user, "password", "")))
    found = _hashes.get(key)
    if found is None:
        if len(_hashes) > 100_000:
            _hashes.clear()
        found = _hashes[key] = str(user.get_session_auth_hash())
    return found


def _live_sessions(keys: Collection[str]) -> set[str]:
    """The keys of ``keys`` whose sessions still exist and have not expired."""
    if not keys:
        return set()
    engine = import_module(settings.SESSION_ENGINE)
    store = engine.SessionStore
    if hasattr(store, "get_model_class"):  # db and cached_db: the database decides
        model = store.get_model_class()
        now = timezone.now()
        live: set[str] = set()
        for batch in chunks(sorted(keys)):
            rows = model.objects.filter(session_key__in=batch, expire_date__gt=now)
            if rows.count() == len(batch):  # the usual case: one row read, not 500
                live.update(batch)
            else:
                live.update(rows.values_list("session_key", flat=True))
        return live
    prefix = getattr(engine, "KEY_PREFIX", None)
    if prefix is not None and settings.SESSION_ENGINE.endswith(".cache"):
        cache = caches[settings.SESSION_CACHE_ALIAS]
        present: set[str] = set()
        for batch in chunks(sorted(keys)):
            present.update(key[len(prefix) :] for key in cache.get_many(prefix + k for k in batch))
        return present
    return {key for key in keys if store(key).load()}


def _all_jobs(users: dict[str, Any]) -> dict[str, bool]:
    """Whether each user may receive every job."""
    decided = {pk: permissions.all_jobs_without_database(user) for pk, user in users.items()}
    undecided = [pk for pk, verdict in decided.items() if verdict is None]
    result = {pk: bool(verdict) for pk, verdict in decided.items()}
    if undecided:
        granted = _with_permission(undecided, users)
        result.update({pk: pk in granted for pk in undecided})
    return result


def _with_permission(pks: list[str], users: dict[str, Any]) -> set[str]:
    perm = conf.ALL_JOBS_PERMISSION
    if list(settings.AUTHENTICATION_BACKENDS) != [MODEL_BACKEND] or "." not in perm:
        return {pk for pk in pks if users[pk].has_perm(perm)}
    app_label, codename = perm.split(".", 1)
    direct = Q(
        user_permissions__content_type__app_label=app_label, user_permissions__codename=codename
    )
    grouped = Q(
        groups__permissions__content_type__app_label=app_label,
        groups__permissions__codename=codename,
    )
    manager = get_user_model()._default_manager
    granted: set[str] = set()
    for batch in chunks(pks):
        rows = manager.filter(Q(pk__in=batch) & (Q(is_superuser=True) | direct | grouped))
        granted.update(str(pk) for pk in rows.values_list("pk", flat=True).distinct())
    return granted


def _denied(
    users: dict[str, Any], all_jobs: dict[str, bool], grants: Sequence[Grant]
) -> dict[str, frozenset[str]]:
    """For each user, the jobs of its subscriptions the job authorizer denies."""
    wanted = jobs_to_check(grants)
    if conf.JOB_AUTHORIZER == DEFAULT_AUTHORIZER:  # the all-jobs permission decides
        return {pk: frozenset(jobs) for pk, jobs in wanted.items() if not all_jobs.get(pk)}
    authorize: Callable[[Any, str], bool] = import_string(conf.JOB_AUTHORIZER)
    denied: dict[str, frozenset[str]] = {}
    for pk, jobs in wanted.items():
        user = users.get(pk)
        if user is None:
            continue
        refused = frozenset(job for job in jobs if not authorize(user, job))
        if refused:
            denied[pk] = refused
    return denied
