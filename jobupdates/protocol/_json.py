"""JSON helpers shared by the protocol modules."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> str:
    """Encode compactly, keeping non-ASCII text as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def describe(value: object) -> str:
    """Name a JSON value's type for an error message."""
    return "null" if value is None else type(value).__name__
