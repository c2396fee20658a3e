"""Deprecated import path: use :mod:`jobupdates.access.permissions`.

``JOBUPDATES_JOB_AUTHORIZER = "jobupdates.permissions.can_view_job"`` keeps
working for one release (see CHANGELOG.md); the warning says where it moved.
"""

from __future__ import annotations

import warnings

from jobupdates.access.permissions import can_view_all_jobs, can_view_job, forbidden_jobs

__all__ = ["can_view_all_jobs", "can_view_job", "forbidden_jobs"]

warnings.warn(
    "jobupdates.permissions is deprecated: name jobupdates.access.permissions.can_view_job",
    DeprecationWarning,
    stacklevel=2,
)
