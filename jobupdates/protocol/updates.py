"""Job updates from Redis: parse and validate what a worker PUBLISHes.

Pure: no Django, asyncio or I/O. :func:`parse_job_update` turns the raw bytes
into a :class:`JobUpdate` or raises :class:`InvalidJobUpdate` with a
:class:`RejectReason`; :meth:`JobUpdate.to_frame` encodes the client frame once,
and refuses (the same way) an update that JSON or MessagePack clients could not
receive: a number outside :mod:`jobupdates.protocol.numbers`'s range, a lone
surrogate, nesting deeper than MessagePack's.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import msgpack

from jobupdates.protocol._json import describe, dumps
from jobupdates.protocol.frames import ServerMessageType
from jobupdates.protocol.jobs import JobIdError, normalize_job_id
from jobupdates.protocol.numbers import number_detail

DEFAULT_STATUSES: tuple[str, ...] = (
    "pending",
    "queued",
    "processing",
    "completed",
    "failed",
    "cancelled",
)
"""The job statuses accepted when ``JOBUPDATES_STATUSES`` is not set."""
_TOO_DEEP = "expected JSON nested within the encoders' limits (MessagePack's: 1,024), got deeper"


class RejectReason(enum.StrEnum):
    """Why a message from Redis was rejected: a stable, loggable code."""

    TOO_LARGE = "too_large"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    TOO_DEEP = "too_deep"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_JOB_ID = "missing_job_id"
    INVALID_JOB_ID = "invalid_job_id"
    INVALID_STATUS = "invalid_status"
    UNKNOWN_STATUS = "unknown_status"
    UNENCODABLE = "unencodable"
    INVALID_NUMBER = "invalid_number"
    """A float that is not finite (``1e400``) or an integer outside -2**63 .. 2**64-1:
    a number JSON or MessagePack clients cannot receive (:mod:`jobupdates.protocol.numbers`)."""
    MISSING_PAYLOAD = "missing_payload"
    """A durable ingest stream entry without a ``payload`` field."""


class InvalidJobUpdate(ValueError):
    """A Redis payload that is not a valid job update.

    Attributes:
        reason: The machine-readable reason code.
        detail: What was expected and what came instead.
    """

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A validated job update, as published by a worker.

    Attributes:
        job_id: The job's identifier (an integer ``job_id`` becomes its decimal text).
        status: One of the configured statuses.
        data: Any JSON value the worker attached; ``None`` when it sent none.
    """

    job_id: str
    status: str
    data: Any = None

    def to_frame(self) -> str:
        """Return the ``job_update`` text frame that clients receive, once it is known
        that MessagePack clients can receive the same message.

        Raises:
            InvalidJobUpdate: ``invalid_number`` if the update holds a number JSON or
                MessagePack cannot carry (:mod:`jobupdates.protocol.numbers`);
                ``unencodable`` if it holds text that is not valid Unicode (a lone
                surrogate from a ``\\ud800`` escape); ``too_deep`` if it is nested
                deeper than MessagePack's limit.
        """
        message = {
            "type": ServerMessageType.JOB_UPDATE.value,
            "job_id": self.job_id,
            "status": self.status,
            "data": self.data,
        }
        try:
            frame = dumps(message, allow_nan=False)  # inf: 1e400 in the worker's JSON
        except ValueError:
            raise InvalidJobUpdate(RejectReason.INVALID_NUMBER, number_detail(self.data)) from None
        except RecursionError:  # parsed within the limit, a few frames short of it here
            raise InvalidJobUpdate(RejectReason.TOO_DEEP, _TOO_DEEP) from None
        try:
            frame.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidJobUpdate(
                RejectReason.UNENCODABLE,
                f"expected valid Unicode text, got a lone surrogate at offset {exc.start}",
            ) from None
        if self.data is not None and not isinstance(self.data, str):
            _check_msgpack(message)
        return frame


def _check_msgpack(message: dict[str, Any]) -> None:
    """Refuse what MessagePack cannot carry: one pass of msgpack's C packer, which
    checks every integer's range (about 1 us for a typical update; measured)."""
    try:
        msgpack.packb(message)
    except OverflowError:
        raise InvalidJobUpdate(
            RejectReason.INVALID_NUMBER, number_detail(message["data"])
        ) from None
    except ValueError:  # "recursion limit exceeded": Python 3.13's json nests deeper
        raise InvalidJobUpdate(RejectReason.TOO_DEEP, _TOO_DEEP) from None


def _reject_constant(name: str) -> Any:
    raise InvalidJobUpdate(
        RejectReason.INVALID_JSON, f"expected a JSON number, got the non-standard constant {name}"
    )


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
"""Built once: ``json.loads`` with an option builds a decoder per call (2 us, measured)."""


def _loads_object(text: str) -> dict[str, Any]:
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise InvalidJobUpdate(
            RejectReason.TOO_DEEP,
            "expected JSON nested within the parser's recursion limit, got deeper nesting",
        ) from None
    except InvalidJobUpdate:
        raise
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise InvalidJobUpdate(RejectReason.INVALID_JSON, f"expected JSON, {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJobUpdate(
            RejectReason.NOT_AN_OBJECT, f"expected a JSON object, got {describe(value)}"
        )
    return value


def _job_id(payload: dict[str, Any]) -> str:
    try:
        return normalize_job_id(payload.get("job_id"))
    except JobIdError as exc:
        reason = RejectReason.MISSING_JOB_ID if exc.missing else RejectReason.INVALID_JOB_ID
        raise InvalidJobUpdate(reason, exc.detail) from None


def _status(payload: dict[str, Any], statuses: Collection[str]) -> str:
    status = payload.get("status")
    if not isinstance(status, str):
        raise InvalidJobUpdate(
            RejectReason.INVALID_STATUS, f"expected status to be a string, got {describe(status)}"
        )
    if status not in statuses:
        shown = status if len(status) <= 40 else status[:40] + "..."
        raise InvalidJobUpdate(
            RejectReason.UNKNOWN_STATUS,
            f"expected status to be one of {', '.join(statuses)}; got {shown!r}",
        )
    return status


def parse_job_update(
    payload: bytes | str,
    *,
    statuses: Collection[str] = DEFAULT_STATUSES,
    max_bytes: int = 1024 * 1024,
) -> JobUpdate:
    """Parse and validate one message published on the updates channel.

    The worker's format is ``{"job_id": "...", "status": "...", "data": {...}}``.
    Fields other than these three are ignored.

    Args:
        payload: The raw message, as Redis delivered it.
        statuses: The statuses to accept.
        max_bytes: The largest payload to accept, in bytes.

    Returns:
        The validated update.

    Raises:
        InvalidJobUpdate: With a :class:`RejectReason` and what was expected.
    """
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(raw) > max_bytes:
        raise InvalidJobUpdate(
            RejectReason.TOO_LARGE, f"expected at most {max_bytes} bytes, got {len(raw)}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJobUpdate(
            RejectReason.INVALID_UTF8, f"expected UTF-8, got invalid byte(s) at offset {exc.start}"
        ) from None
    fields = _loads_object(text)
    return JobUpdate(
        job_id=_job_id(fields), status=_status(fields, statuses), data=fields.get("data")
    )
