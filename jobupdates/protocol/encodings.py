"""How a connection's messages are encoded: JSON text frames or MessagePack binary frames.

Pure: no I/O. A client picks the encoding with the subprotocol it offers
(``Sec-WebSocket-Protocol``, as it offers a token): ``jobupdates.v1.msgpack``
for MessagePack, ``jobupdates.v1`` (or none) for JSON. The messages are the
same either way: a MessagePack message is the map of the JSON object, so every
server message is built once, as JSON text (:mod:`jobupdates.protocol.frames`),
and re-encoded for MessagePack connections (:func:`payload`).

The bridge refuses an update that one encoding cannot carry (``invalid_number``,
:mod:`jobupdates.protocol.numbers`), but the history may hold one that an older
bridge recorded: ``Infinity`` in its JSON text (not JSON: a browser's
``JSON.parse`` throws), or an integer beyond MessagePack's 64 bits. For such a
text, :func:`payload` and :func:`asgi_send` raise :class:`Unencodable` instead
of sending a message the client cannot read, or failing the connection: the
caller skips that message for the connections of that encoding.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

import msgpack

from jobupdates.protocol.numbers import number_detail

__all__ = [
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "Encoding",
    "Unencodable",
    "asgi_send",
    "check_json",
    "negotiate",
    "payload",
]

JSON_SUBPROTOCOL = "jobupdates.v1"
"""The subprotocol of JSON text frames (the default, also with no subprotocol)."""
MSGPACK_SUBPROTOCOL = "jobupdates.v1.msgpack"
"""The subprotocol of MessagePack binary frames."""


class Encoding(enum.Enum):
    """A connection's message encoding."""

    JSON = JSON_SUBPROTOCOL
    MSGPACK = MSGPACK_SUBPROTOCOL

    @property
    def binary(self) -> bool:
        """Whether its messages travel in binary frames."""
        return self is Encoding.MSGPACK

    @classmethod
    def of(cls, subprotocol: str | None) -> Encoding:
        """The encoding of a connection that selected ``subprotocol``."""
        return cls.MSGPACK if subprotocol == MSGPACK_SUBPROTOCOL else cls.JSON


def negotiate(offered: Iterable[str]) -> tuple[str | None, Encoding]:
    """Pick the subprotocol to select among those a client offered, and its encoding.

    MessagePack if offered, else ``jobupdates.v1`` if offered, else no
    subprotocol (JSON). A token's ``token.<token>`` is never selected.
    """
    offered = tuple(offered)
    if MSGPACK_SUBPROTOCOL in offered:
        return MSGPACK_SUBPROTOCOL, Encoding.MSGPACK
    if JSON_SUBPROTOCOL in offered:
        return JSON_SUBPROTOCOL, Encoding.JSON
    return None, Encoding.JSON


class Unencodable(ValueError):
    """A server message (JSON text) that a connection's encoding cannot carry.

    Attributes:
        encoding: The encoding.
        detail: What was expected and what came instead.
    """

    def __init__(self, encoding: Encoding, detail: str) -> None:
        super().__init__(f"{encoding.value}: {detail}")
        self.encoding = encoding
        self.detail = detail


def _constant(name: str) -> Any:
    raise Unencodable(Encoding.JSON, f"expected JSON text, got the non-standard constant {name}")


_strict = json.JSONDecoder(parse_constant=_constant)
"""``json.loads(text, parse_constant=...)`` without building a decoder per call (3 us)."""


def check_json(text: str) -> None:
    """Raise :class:`Unencodable` if ``text`` holds a bare ``Infinity``, ``-Infinity``
    or ``NaN`` (an older bridge's ``1e400``): not JSON.

    Cheap: a search for one character (``memchr``: 0.2 us for 10 KB) rules out
    most texts, one for the word (1-2 ns a character) most others, and only a
    text that has the word (maybe in a string) is parsed to be sure.
    """
    if ("I" in text and "Infinity" in text) or ("N" in text and "NaN" in text):
        try:
            _strict.decode(text)
        except Unencodable:
            raise
        except (ValueError, RecursionError) as exc:
            raise Unencodable(Encoding.JSON, f"expected JSON text, {exc}") from None


def payload(text: str, encoding: Encoding) -> bytes:
    """The payload of a server message (built as JSON ``text``) in ``encoding``.

    Raises:
        Unencodable: If ``encoding`` cannot carry it (see :func:`check_json`; for
            MessagePack, also an integer outside -2**63 .. 2**64-1, or nesting
            deeper than its limit).
    """
    if encoding is Encoding.MSGPACK:
        value = None
        try:
            value = _strict.decode(text)
            packed: bytes = msgpack.packb(value, use_bin_type=True)
        except Unencodable as exc:
            raise Unencodable(encoding, exc.detail) from None
        except OverflowError:  # an integer beyond 64 bits
            raise Unencodable(encoding, number_detail(value)) from None
        except (ValueError, RecursionError) as exc:  # msgpack's nesting limit, not JSON
            raise Unencodable(encoding, f"expected JSON text MessagePack carries, {exc}") from None
        return packed
    check_json(text)
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise Unencodable(encoding, f"expected valid Unicode text, {exc}") from None


def asgi_send(text: str, encoding: Encoding) -> dict[str, Any]:
    """The ASGI ``websocket.send`` message of a server message in ``encoding``.

    Raises:
        Unencodable: As :func:`payload`.
    """
    if encoding is Encoding.MSGPACK:
        return {"type": "websocket.send", "bytes": payload(text, encoding)}
    check_json(text)
    return {"type": "websocket.send", "text": text}
