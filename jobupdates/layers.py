"""Deprecated import path: use :mod:`jobupdates.delivery.layers`.

Settings that name ``jobupdates.layers.JobUpdatesChannelLayer`` keep working
for one release (see CHANGELOG.md); the warning says where it moved.
"""

from __future__ import annotations

import warnings

from jobupdates.delivery.layers import JobUpdatesChannelLayer

__all__ = ["JobUpdatesChannelLayer"]

warnings.warn(
    "jobupdates.layers is deprecated: name jobupdates.delivery.layers.JobUpdatesChannelLayer",
    DeprecationWarning,
    stacklevel=2,
)
