"""Dead letters: the Redis messages the bridge rejected, as stored entries.

Pure: no Django, asyncio or I/O. :func:`dead_letter` turns a rejected payload
into a :class:`DeadLetter` (reason, detail, receive time and a bounded
preview of the payload), :meth:`DeadLetter.to_json` encodes it for the capped
Redis list, and :func:`decode_dead_letter` reads it back for ``/ws/stats``
and the admin.

A preview is the payload's first :data:`PREVIEW_BYTES` bytes: as text when
they are printable UTF-8 (a character cut in half at the end is dropped),
else base64, so any bytes a worker sent can be inspected safely.
"""

from __future__ import annotations

import base64
import enum
import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "DETAIL_CHARS",
    "PREVIEW_BYTES",
    "DeadLetter",
    "PreviewEncoding",
    "dead_letter",
    "decode_dead_letter",
    "preview_of",
]

PREVIEW_BYTES = 1024
"""How much of a rejected payload a dead letter keeps."""
DETAIL_CHARS = 500
"""How much of a rejection's detail a dead letter keeps."""
_ALLOWED_CONTROLS = frozenset("\t\n\r")
_UTF8_MAX_CHAR_BYTES = 4


class PreviewEncoding(enum.StrEnum):
    """How a dead letter's ``preview`` holds the payload's first bytes."""

    TEXT = "text"
    BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected Redis message.

    Attributes:
        id: A random 32-hex id (the admin's primary key).
        received_at: When the bridge received it (Unix time).
        channel: The Redis channel it came on.
        reason: The :class:`~jobupdates.protocol.RejectReason` value.
        detail: What was expected and what came instead (bounded).
        size: The payload's full length in bytes.
        preview: The payload's first bytes, as :attr:`encoding` says.
        encoding: ``text`` or ``base64``.
        truncated: Whether the preview is shorter than the payload.
    """

    id: str
    received_at: float
    channel: str
    reason: str
    detail: str
    size: int
    preview: str
    encoding: PreviewEncoding
    truncated: bool

    def to_json(self) -> str:
        """Return the entry as stored in Redis: compact JSON, ASCII only."""
        return json.dumps(asdict(self), separators=(",", ":"))


def _printable(text: str) -> bool:
    return all(ch.isprintable() or ch in _ALLOWED_CONTROLS for ch in text)


def preview_of(payload: bytes, limit: int = PREVIEW_BYTES) -> tuple[str, PreviewEncoding]:
    """Return the first ``limit`` bytes of ``payload`` as printable text, or base64."""
    head = payload[:limit]
    cut = len(head) < len(payload)
    for drop in range(_UTF8_MAX_CHAR_BYTES if cut else 1):
        try:
            text = head[: len(head) - drop].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if _printable(text):
            return text, PreviewEncoding.TEXT
        break
    return base64.b64encode(head).decode("ascii"), PreviewEncoding.BASE64


def dead_letter(
    payload: bytes, *, channel: str, reason: str, detail: str, received_at: float
) -> DeadLetter:
    """Build the dead letter of a rejected ``payload``."""
    preview, encoding = preview_of(payload)
    return DeadLetter(
        id=uuid.uuid4().hex,
        received_at=received_at,
        channel=channel,
        reason=reason,
        detail=detail[:DETAIL_CHARS],
        size=len(payload),
        preview=preview,
        encoding=encoding,
        truncated=len(payload) > PREVIEW_BYTES,
    )


def decode_dead_letter(raw: bytes | str) -> DeadLetter | None:
    """Read an entry written by :meth:`DeadLetter.to_json`; None if it is not one."""
    try:
        value: Any = json.loads(raw)
        return DeadLetter(
            id=str(value["id"]),
            received_at=float(value["received_at"]),
            channel=str(value["channel"]),
            reason=str(value["reason"]),
            detail=str(value["detail"]),
            size=int(value["size"]),
            preview=str(value["preview"]),
            encoding=PreviewEncoding(value["encoding"]),
            truncated=bool(value["truncated"]),
        )
    except (ValueError, TypeError, KeyError):
        return None
