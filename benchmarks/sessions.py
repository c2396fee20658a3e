"""Real Django sessions for the benchmark user, one per storm client.

:func:`create` writes them straight to the database with one ``manage.py
shell`` (``bulk_create`` in one transaction: 10,000 take about a second),
each holding what ``django.contrib.auth.login`` stores. Every target shares
the database and the secret key, so one set serves every target and round.
"""

from __future__ import annotations

import logging
import time

from harness.processes import child_env, manage

logger = logging.getLogger(__name__)

CODE = """
from datetime import timedelta
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
user = User.objects.get(username={username!r})
data = SessionStore().encode({{
    "_auth_user_id": str(user.pk),
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": user.get_session_auth_hash(),
}})
expires = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
keys = [get_random_string(32, VALID_KEY_CHARS) for _ in range({count})]
with transaction.atomic():
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=data, expire_date=expires) for k in keys],
        batch_size=500,
    )
print("\\n".join(keys))
"""


def create(database_url: str, username: str, count: int) -> list[str]:
    """Create ``count`` sessions of ``username``; return their Cookie headers."""
    started = time.monotonic()
    output = manage(
        child_env(DATABASE_URL=database_url),
        "shell",
        "-c",
        CODE.format(username=username, count=count),
    )
    keys = output.split()[-count:] if count else []
    if len(keys) != count or not all(len(key) == 32 for key in keys):
        raise RuntimeError(f"expected {count} session keys, got {output[-500:]!r}")
    logger.info("%d sessions created in %.1f s", count, time.monotonic() - started)
    return [f"sessionid={key}" for key in keys]
