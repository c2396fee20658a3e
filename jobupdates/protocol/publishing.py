"""Pure logic of ``manage.py publish_job_update``: payloads, menus and rates.

No Django, Redis or I/O here. :func:`build_payload` encodes an update in the
worker's exact format and validates it with
:func:`jobupdates.protocol.parse_job_update`, the bridge's own parser, so the
command refuses exactly what the bridge would reject. Every refusal is a
:class:`PublishError` whose message says what was expected and what came.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobupdates.protocol import InvalidJobUpdate, RejectReason, parse_job_update
from jobupdates.protocol._json import dumps

__all__ = [
    "SEQUENCE_PLACEHOLDER",
    "PublishError",
    "RateSummary",
    "build_payload",
    "job_id_for",
    "parse_data",
    "progress_bar",
    "resolve_status",
    "status_menu",
]

SEQUENCE_PLACEHOLDER = "{n}"
"""In a burst, this text in a job id becomes the message's 1-based sequence number."""

_SNIPPET_CHARS = 60


class PublishError(ValueError):
    """An update the command refuses to publish; the message is for the operator."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not standard JSON (the bridge rejects it)")


def parse_data(text: str | None, label: str = "--data") -> Any:
    """Parse the ``--data`` option.

    Args:
        text: The option's JSON text, or ``None`` when it was not given.
        label: What to call the text in an error message.

    Returns:
        The JSON value, or ``None`` when there is no text.

    Raises:
        PublishError: If the text is not standard JSON; the message gives the
            line, column and a pointer to where parsing stopped.
    """
    if text is None:
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        lines = text.split("\n")
        line = lines[exc.lineno - 1] if exc.lineno <= len(lines) else ""
        start = max(0, exc.colno - 1 - _SNIPPET_CHARS // 2)
        snippet = line[start : start + _SNIPPET_CHARS]
        pointer = " " * (exc.colno - 1 - start) + "^"
        raise PublishError(
            f"{label} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(character {exc.pos}):\n  {snippet}\n  {pointer}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise PublishError(f"{label} is not valid JSON: {exc}") from None


def build_payload(
    job_id: str,
    status: str,
    data: Any = None,
    *,
    statuses: Sequence[str],
    max_bytes: int,
) -> bytes:
    """Encode one update as a worker does and check the bridge would accept it.

    Args:
        job_id: The job's identifier.
        status: The job's status; one of ``statuses``.
        data: Any JSON value, sent as ``null`` when ``None``.
        statuses: The statuses the bridge accepts (``conf.STATUSES``).
        max_bytes: The largest payload the bridge accepts (``conf.MAX_PAYLOAD_BYTES``).

    Returns:
        The UTF-8 payload, e.g. ``{"job_id":"j-1","status":"completed","data":null}``.

    Raises:
        PublishError: If the bridge would reject the payload.
    """
    text = dumps({"job_id": job_id, "status": status, "data": data})
    try:
        payload = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PublishError(
            f"the bridge would reject this update ({RejectReason.UNENCODABLE.value}): "
            f"expected valid Unicode text, got a lone surrogate at offset {exc.start}"
        ) from None
    try:
        parse_job_update(payload, statuses=statuses, max_bytes=max_bytes).to_frame()
    except InvalidJobUpdate as exc:
        if exc.reason in (RejectReason.UNKNOWN_STATUS, RejectReason.INVALID_STATUS):
            raise PublishError(
                f"unknown status {status!r}: expected one of {', '.join(statuses)}"
            ) from None
        raise PublishError(
            f"the bridge would reject this update ({exc.reason.value}): {exc.detail}"
        ) from None
    return payload


def job_id_for(template: str, number: int) -> str:
    """Return the job id of message ``number`` (1-based) of a burst."""
    return template.replace(SEQUENCE_PLACEHOLDER, str(number))


def status_menu(statuses: Sequence[str]) -> str:
    """Return the numbered menu of statuses shown in interactive mode."""
    lines = ["Statuses:"]
    lines.extend(f"  {number}) {status}" for number, status in enumerate(statuses, 1))
    return "\n".join(lines)


def resolve_status(choice: str, statuses: Sequence[str]) -> str:
    """Turn a menu answer (a number or a status name) into a status.

    Raises:
        PublishError: If the answer is neither a listed number nor a status.
    """
    answer = choice.strip()
    if answer.isdigit() and 1 <= int(answer) <= len(statuses):
        return statuses[int(answer) - 1]
    if answer in statuses:
        return answer
    raise PublishError(
        f"unknown status {answer!r}: expected a number from 1 to {len(statuses)} "
        f"or one of {', '.join(statuses)}"
    )


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """Return a one-line text progress bar, e.g. ``[#####-----]  50/100  50%``."""
    fraction = done / total if total > 0 else 1.0
    filled = round(width * fraction)
    digits = len(str(total))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done:>{digits}}/{total} {fraction:4.0%}"


@dataclass(frozen=True, slots=True)
class RateSummary:
    """What a run of publishes achieved.

    Attributes:
        messages: How many messages were published.
        seconds: How long publishing them took.
        receivers: How many subscribers received each message, in order.
    """

    messages: int
    seconds: float
    receivers: tuple[int, ...]

    @property
    def rate(self) -> float:
        """Messages per second (0 when no time has passed)."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """Return the one-line summary printed after a stress run."""
        if self.receivers:
            spread = f"{min(self.receivers)}-{max(self.receivers)}"
            if min(self.receivers) == max(self.receivers):
                spread = str(self.receivers[0])
        else:
            spread = "0"
        return (
            f"{self.messages} messages in {self.seconds:.3f} s: {self.rate:.1f} messages/s; "
            f"subscribers per message: {spread}; deliveries: {sum(self.receivers)}"
        )
