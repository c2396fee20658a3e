"""Values from outside, made safe for a log line.

Pure: no I/O. A client, a worker or another process controls the text it
sends; written raw into a log line, a newline forges a second line and one
value can fill a screen. :func:`loggable` escapes (``repr``) and truncates.
"""

from __future__ import annotations

__all__ = ["LOG_VALUE_LIMIT", "loggable"]

LOG_VALUE_LIMIT = 200
"""Characters of a value's ``repr`` kept in a log line."""


def loggable(value: object, limit: int = LOG_VALUE_LIMIT) -> str:
    """Return ``repr(value)``, cut to ``limit`` characters with the size of what was cut.

    >>> loggable("a\\nCRITICAL forged")
    "'a\\\\nCRITICAL forged'"
    >>> loggable("x" * 300, limit=10)
    "'xxxxxxxxx... (292 more characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"
