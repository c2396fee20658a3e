"""Django's own changes of authority, announced to every server process at once.

Connected by the app (:meth:`jobupdates.apps.JobUpdatesConfig.ready`), in
every process that runs Django (web workers, the admin, management commands):

* a logout (``user_logged_out``), and a deleted session row: the connections
  of that session close (4401);
* a user saved (not a login's ``last_login``): their connections are judged
  again (deactivation, a password change, ``is_staff`` or ``is_superuser``);
* a user deleted: their connections close (4401);
* a user's groups or permissions changed: theirs are judged again; a group's
  permissions changed: every connection is.

Each announcement waits for the transaction to commit (``on_commit``), so
the server processes read what was saved. Signals do not see
``QuerySet.update``, raw SQL, another service's writes or a session's expiry:
the sweep of :mod:`jobupdates.access.revocation` catches those.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_out
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from jobupdates.access import announce

__all__ = ["connect"]

logger = logging.getLogger(__name__)

UID = "jobupdates.access.signals"
M2M_ACTIONS = frozenset({"post_add", "post_remove", "post_clear"})


def connect() -> None:
    """Connect the handlers (once: each has a ``dispatch_uid``)."""
    user_model = get_user_model()
    user_logged_out.connect(_logged_out, dispatch_uid=f"{UID}.logout")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid=f"{UID}.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid=f"{UID}.user_deleted")
    for name in ("groups", "user_permissions"):
        field = getattr(user_model, name, None)
        if field is not None:
            m2m_changed.connect(_user_m2m, sender=field.through, dispatch_uid=f"{UID}.user_{name}")
    m2m_changed.connect(
        _group_permissions, sender=Group.permissions.through, dispatch_uid=f"{UID}.groups"
    )
    if apps.is_installed("django.contrib.sessions"):
        from django.contrib.sessions.models import Session

        post_delete.connect(_session_deleted, sender=Session, dispatch_uid=f"{UID}.session")


def _later(what: str, call: Callable[[], None]) -> None:
    """Announce once the transaction commits; a failure is logged, never raised."""

    def run() -> None:
        try:
            call()
        except Exception as exc:  # the change itself must not fail: the sweep catches it
            logger.warning("could not announce %s (%s: %s)", what, type(exc).__name__, exc)

    transaction.on_commit(run)


def _logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        _later("a logout", lambda: announce.revoke_session(key))


def _session_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    key = instance.session_key
    _later("a deleted session", lambda: announce.revoke_session(key))


def _user_saved(
    sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or (update_fields is not None and set(update_fields) == {"last_login"}):
        return  # a new user has no connection; a login changes no authority
    pk = instance.pk
    _later("a saved user", lambda: announce.reauthorize(pk))


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    pk = instance.pk
    _later("a deleted user", lambda: announce.revoke(pk))


def _user_m2m(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any = None, **kwargs: Any
) -> None:
    if action not in M2M_ACTIONS:
        return
    if not reverse:  # user.groups / user.user_permissions changed
        pk = instance.pk
        _later("a user's groups or permissions", lambda: announce.reauthorize(pk))
    else:  # group.user_set (or a permission's users) changed
        users: list[Any] = list(pk_set) if pk_set else [None]
        for member in users:
            _later("a group's members", functools.partial(announce.reauthorize, member))


def _group_permissions(sender: Any, action: str, **kwargs: Any) -> None:
    if action in M2M_ACTIONS:
        _later("a group's permissions", lambda: announce.reauthorize(None))
