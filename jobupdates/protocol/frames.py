"""Client frames: what a browser may send, and every frame the server sends.

Pure: no Django, asyncio or I/O. :func:`parse_client_frame` turns a WebSocket
frame into a :class:`ClientMessage` or raises :class:`FrameError` with the
:class:`ErrorCode` to send back.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

import msgpack

from jobupdates.protocol._json import describe, dumps
from jobupdates.protocol.encodings import Encoding
from jobupdates.protocol.jobs import JobIdError, normalize_job_id
from jobupdates.protocol.positions import ResetReason

MAX_CLIENT_FRAME_BYTES = 4096
"""The default largest client frame parsed; the client protocol only has small frames."""


class ErrorCode(enum.StrEnum):
    """The ``code`` of an ``{"type": "error"}`` frame sent to a client."""

    UNAUTHENTICATED = "unauthenticated"
    BINARY_FRAME = "binary_frame"
    TEXT_FRAME = "text_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID_JSON = "invalid_json"
    INVALID_MSGPACK = "invalid_msgpack"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_JOB_IDS = "invalid_job_ids"
    INVALID_POSITION = "invalid_position"
    DISCONNECTED_BY_STAFF = "disconnected_by_staff"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - an error code, not a secret
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    FORBIDDEN = "forbidden"
    JOB_FORBIDDEN = "job_forbidden"
    TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_BAD_FRAMES = "too_many_bad_frames"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVER_FULL = "server_full"
    SERVER_BUSY = "server_busy"
    SLOW_CLIENT = "slow_client"
    SERVER_RESTARTING = "server_restarting"
    INTERNAL_ERROR = "internal_error"
    AUTHENTICATION_REVOKED = "authentication_revoked"
    """The connection's identity is gone: logged out, session ended, user deactivated
    or deleted, password changed (close 4401)."""
    PERMISSION_REVOKED = "permission_revoked"
    """The connection may no longer receive what it receives (close 4403, or an
    ``unsubscribed`` with this reason for the jobs it lost)."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes the server uses (4000-4999 are application codes).

    Each application close follows an ``error`` frame that says why, because
    Daphne drops the close reason text. Clients should not reconnect
    automatically after 4000, 4401 or 4403: a person has to act first.
    """

    NORMAL = 1000
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    DISCONNECTED_BY_STAFF = 4000
    PROTOCOL_ERROR = 4400
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    SLOW_CLIENT = 4408
    RATE_LIMITED = 4429
    SERVER_FULL = 4503


class ServerMessageType(enum.StrEnum):
    """The ``type`` of each frame the server sends."""

    WELCOME = "welcome"
    JOB_UPDATE = "job_update"
    JOB_STATE = "job_state"
    RESET = "reset"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    PONG = "pong"
    ERROR = "error"


class ClientMessageType(enum.StrEnum):
    """The ``type`` of each frame a client may send."""

    PING = "ping"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"


class FrameError(ValueError):
    """A client frame that cannot be handled.

    Attributes:
        code: The error code sent back to the client.
        detail: What was expected and what came instead.
    """

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


_CLIENT_TYPES = frozenset(t.value for t in ClientMessageType)


@dataclass(frozen=True, slots=True)
class ClientMessage:
    """A valid frame from a client.

    Attributes:
        type: What the client asks for.
        job_ids: The jobs to (un)subscribe, in order, without repeats.
    """

    type: ClientMessageType
    job_ids: tuple[str, ...] = ()


def parse_job_ids(raw: object) -> tuple[str, ...]:
    """Validate a list of job ids from a client; drop repeats, keep the order.

    Raises:
        FrameError: ``invalid_job_ids``, saying which entry is wrong.
    """
    if not isinstance(raw, list) or not raw:
        raise FrameError(
            ErrorCode.INVALID_JOB_IDS,
            f"expected job_ids to be a non-empty list, got {describe(raw)}",
        )
    job_ids: dict[str, None] = {}
    for index, item in enumerate(raw):
        try:
            job_ids[normalize_job_id(item)] = None
        except JobIdError as exc:
            raise FrameError(ErrorCode.INVALID_JOB_IDS, f"job_ids[{index}]: {exc.detail}") from None
    return tuple(job_ids)


def parse_client_frame(
    text: str | None,
    data: bytes | None,
    *,
    max_chars: int = MAX_CLIENT_FRAME_BYTES,
    encoding: Encoding = Encoding.JSON,
) -> ClientMessage:
    """Parse one frame received from a client.

    Args:
        text: The frame's text, for a text frame.
        data: The frame's bytes, for a binary frame.
        max_chars: The longest frame handled: characters of a JSON text frame,
            bytes of a MessagePack binary frame.
        encoding: The connection's encoding: JSON text frames, or MessagePack
            binary frames (one map each).

    Returns:
        The client's message.

    Raises:
        FrameError: With the :class:`ErrorCode` to send back.
    """
    if encoding is Encoding.MSGPACK:
        value = _unpack(text, data, max_chars)
    else:
        value = _loads(text, data, max_chars)
    if not isinstance(value, dict):
        noun = "MessagePack map" if encoding is Encoding.MSGPACK else "JSON object"
        raise FrameError(ErrorCode.NOT_AN_OBJECT, f"expected a {noun}, got {describe(value)}")
    kind = value.get("type")
    if isinstance(kind, str) and kind in _CLIENT_TYPES:
        message_type = ClientMessageType(kind)
        if message_type is ClientMessageType.PING:
            return ClientMessage(type=message_type)
        return ClientMessage(type=message_type, job_ids=parse_job_ids(value.get("job_ids")))
    expected = ", ".join(repr(t.value) for t in ClientMessageType)
    raise FrameError(
        ErrorCode.UNKNOWN_TYPE, f"expected type to be one of {expected}, got {kind!r:.60}"
    )


def _loads(text: str | None, data: bytes | None, max_chars: int) -> object:
    if text is None:
        raise FrameError(
            ErrorCode.BINARY_FRAME,
            f"expected a JSON text frame, got a binary frame of {len(data or b'')} bytes",
        )
    if len(text) > max_chars:
        raise FrameError(
            ErrorCode.FRAME_TOO_LARGE, f"expected at most {max_chars} characters, got {len(text)}"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise FrameError(
            ErrorCode.INVALID_JSON, "expected a JSON object, got invalid JSON"
        ) from None


def _unpack(text: str | None, data: bytes | None, max_bytes: int) -> object:
    if data is None:
        raise FrameError(
            ErrorCode.TEXT_FRAME,
            f"expected a MessagePack binary frame, got a text frame of {len(text or '')} "
            "characters",
        )
    if len(data) > max_bytes:
        raise FrameError(
            ErrorCode.FRAME_TOO_LARGE, f"expected at most {max_bytes} bytes, got {len(data)}"
        )
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, RecursionError) as exc:
        raise FrameError(
            ErrorCode.INVALID_MSGPACK,
            f"expected one MessagePack map, got invalid MessagePack ({type(exc).__name__})",
        ) from None


def welcome_frame(client_id: str) -> str:
    """Return the first frame an accepted client receives."""
    return dumps({"type": ServerMessageType.WELCOME.value, "client_id": client_id})


def pong_frame() -> str:
    """Return the answer to a client's ``ping``."""
    return dumps({"type": ServerMessageType.PONG.value})


def error_frame(code: ErrorCode, message: str) -> str:
    """Return an ``error`` frame with a stable code and a human-readable message."""
    return dumps({"type": ServerMessageType.ERROR.value, "code": code.value, "message": message})


def reset_frame(reason: str, message: str, position: str | None = None) -> str:
    """Tell a client that it missed updates it cannot get back; with the ``position``
    of the gap the history recorded, if it is one (the client resumes after it)."""
    frame = {"type": ServerMessageType.RESET.value, "reason": reason, "message": message}
    if position is not None:
        frame["position"] = position
    return dumps(frame)


def gap_frame(why: str, position: str) -> str:
    """The ``reset`` every connection gets where the history records a gap: at
    ``position``, updates the bridges accepted may be missing, because ``why``."""
    message = f"updates may be missing here ({why}); reload the state"
    return reset_frame(ResetReason.UPDATES_LOST.value, message, position)


def subscriptions_frame(
    kind: ServerMessageType, job_ids: tuple[str, ...], reason: ErrorCode | None = None
) -> str:
    """Acknowledge a ``subscribe`` (``subscribed``) or ``unsubscribe`` (``unsubscribed``);
    with ``reason``, an ``unsubscribed`` the server decided (``permission_revoked``)."""
    frame: dict[str, object] = {"type": kind.value, "job_ids": list(job_ids)}
    if reason is not None:
        frame["reason"] = reason.value
    return dumps(frame)
