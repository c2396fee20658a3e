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
