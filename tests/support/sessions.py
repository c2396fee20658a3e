"""A real Django session of a user, as ``django.contrib.auth.login`` stores it."""

from __future__ import annotations

from typing import Any

__all__ = ["session_of"]


def session_of(user: Any) -> str:
    """Save a database session logged in as ``user``; return its key (sync: the ORM)."""
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store["_auth_user_id"] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return str(store.session_key)
