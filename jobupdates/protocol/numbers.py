"""Numbers both encodings carry: what a job update's ``data`` may hold.

Pure: no I/O. Every update reaches some clients as JSON text and others as
MessagePack (:mod:`jobupdates.protocol.encodings`), so each number in it must
be one that both carry:

* a float must be finite. JSON has no ``Infinity`` or ``NaN`` (a browser's
  ``JSON.parse`` throws on them), and ``1e400`` is valid JSON that Python
  reads as infinity;
* an integer must be within :data:`MIN_INTEGER` (-2**63) and
  :data:`MAX_INTEGER` (2**64-1): MessagePack's range. JSON text has no limit,
  but JavaScript reads an integer beyond ``Number.MAX_SAFE_INTEGER``
  (2**53-1) rounded to the nearest double, and a MessagePack decoder in
  JavaScript as a ``BigInt`` or rounded. Such integers are accepted (other
  clients read them exactly); a worker that needs them exact in a browser
  sends them as strings.

The bridge refuses an update holding any other number (``invalid_number``):
:meth:`jobupdates.protocol.JobUpdate.to_frame` checks both at almost no cost
(the JSON encoder refuses a float that is not finite, msgpack's packer an
integer out of range). :func:`number_detail` then names the number.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_INTEGER", "MIN_INTEGER", "RANGE", "carried", "first_uncarried", "number_detail"]

MIN_INTEGER = -(2**63)
"""The smallest integer MessagePack carries (int 64)."""
MAX_INTEGER = 2**64 - 1
"""The largest integer MessagePack carries (uint 64)."""
RANGE = "finite; integers from -2**63 to 2**64-1"
"""The numbers an update may hold, as error messages say it."""
_SHOWN_DIGITS = 30
"""Digits of an integer out of range shown in an error message."""


def carried(number: float) -> bool:
    """Whether both JSON clients and MessagePack clients can receive ``number``."""
    if isinstance(number, float):
        return math.isfinite(number)
    return MIN_INTEGER <= number <= MAX_INTEGER


def first_uncarried(value: Any) -> int | float | None:
    """The first number in ``value`` (a JSON value, depth first) that is not :func:`carried`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list | tuple):
            stack.extend(reversed(item))
        elif isinstance(item, int | float) and not isinstance(item, bool) and not carried(item):
            return item
    return None


def number_detail(value: Any) -> str:
    """Say why ``value`` was refused: what numbers are carried, and the first one that is not."""
    number = first_uncarried(value)
    if number is None:
        got = "one that is not"
    elif isinstance(number, float):
        got = f"{number!r} (a float beyond the 64-bit range, such as 1e400)"
    else:
        try:
            text = str(number)
        except ValueError:  # over Python's 4,300 digits (json.loads refuses those)
            text = f"{'-' if number < 0 else ''}2**{number.bit_length() - 1} or more"
        if len(text) > _SHOWN_DIGITS:
            text = f"{text[:_SHOWN_DIGITS]}... ({len(text.lstrip('-'))} digits)"
        got = f"the integer {text}"
    return f"expected numbers both JSON and MessagePack clients receive ({RANGE}), got {got}"
