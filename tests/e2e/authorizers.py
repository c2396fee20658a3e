"""Per-job authorizers for the end-to-end tests (``JOBUPDATES_JOB_AUTHORIZER``).

Importable by the Daphne processes the tests start (they run from the
project's root).
"""

from __future__ import annotations

from typing import Any


def own_jobs(user: Any, job_id: str) -> bool:
    """A user may receive the jobs whose id starts with ``<username>-``."""
    if not getattr(user, "is_authenticated", False):
        return False
    return job_id.startswith(f"{user.get_username()}-")


GRANTED_KEY = "e2e:granted:{username}"
"""The Redis set of the jobs :func:`granted_in_redis` grants one user."""

_granted_client: Any = None


def granted_in_redis(user: Any, job_id: str) -> bool:
    """A user may receive the jobs in the Redis set ``e2e:granted:<username>``: data a
    test changes from outside (``SADD``, ``SREM``), as an adopting app's own tables
    would change, with no signal."""
    global _granted_client
    if not getattr(user, "is_authenticated", False):
        return False
    if _granted_client is None:
        import redis
        from django.conf import settings

        _granted_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    key = GRANTED_KEY.format(username=user.get_username())
    return bool(_granted_client.sismember(key, job_id))
