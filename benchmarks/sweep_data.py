"""The data of :mod:`benchmarks.sweep`: a migrated SQLite database, users, and one real
session per connection."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness.processes import child_env


def setup(directory: Path) -> None:
    """Configure Django on a new SQLite database in ``directory`` and migrate it."""
    os.environ.update(
        child_env(
            DATABASE_URL=f"sqlite:///{directory / 'sweep.sqlite3'}", JOBUPDATES_REAUTH_SECONDS="0"
        )
    )
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    call_command("migrate", verbosity=0)


def create_case(name: str, users: int, connections: int) -> list[Any]:
    """Create the users and one session per connection; return the connections' grants."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.db import transaction
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from jobupdates.protocol.authority import Grant

    password = make_password("sweep-password-1")
    prefix = "".join(char for char in name if char.isalnum())
    group = Group.objects.create(name=f"viewers-{prefix}")
    group.permissions.add(Permission.objects.get(codename="view_all_jobs"))
    with transaction.atomic():
        created = User.objects.bulk_create(
            [
                User(username=f"{prefix}-{n}", password=password, is_staff=users == 1)
                for n in range(users)
            ],
            batch_size=500,
        )
        if users > 1:
            through = User.groups.through
            rows = [through(user_id=user.pk, group_id=group.pk) for user in created]
            through.objects.bulk_create(rows, batch_size=500)
    expires = timezone.now() + timedelta(days=14)
    owners = [created[n % users] for n in range(connections)]
    keys = [get_random_string(32, VALID_KEY_CHARS) for _ in owners]
    hashes = {user.pk: user.get_session_auth_hash() for user in created}
    backend = "django.contrib.auth.backends.ModelBackend"
    store = SessionStore()
    sessions = [
        Session(
            session_key=key,
            session_data=store.encode(
                {
                    "_auth_user_id": str(u.pk),
                    "_auth_user_backend": backend,
                    "_auth_user_hash": hashes[u.pk],
                }
            ),
            expire_date=expires,
        )
        for key, u in zip(keys, owners, strict=True)
    ]
    with transaction.atomic():
        Session.objects.bulk_create(sessions, batch_size=500)
    return [Grant(str(u.pk), key, hashes[u.pk]) for key, u in zip(keys, owners, strict=True)]
