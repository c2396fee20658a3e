"""How a connection's messages are encoded: JSON text frames or MessagePack binary frames.

Pure: no I/O. A client picks the encoding with the subprotocol it offers
(``Sec-WebSocket-Protocol``, as it offers a token): ``jobupdates.v1.msgpack``
for MessagePack, ``jobupdates.v1`` (or none) for JSON. The messages are the
same either way: a MessagePack message is the map of the JSON object, so every
server message is built once, as JSON text (:mod:`jobupdates.protocol.frames`),
and re-encoded for MessagePack connections (:func:`payload`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

import msgpack

__all__ = [
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "Encoding",
    "asgi_send",
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


def payload(text: str, encoding: Encoding) -> bytes:
    """The payload of a server message (built as JSON ``text``) in ``encoding``."""
    if encoding is Encoding.MSGPACK:
        packed: bytes = msgpack.packb(json.loads(text), use_bin_type=True)
        return packed
    return text.encode()


def asgi_send(text: str, encoding: Encoding) -> dict[str, Any]:
    """The ASGI ``websocket.send`` message of a server message in ``encoding``."""
    if encoding is Encoding.MSGPACK:
        return {"type": "websocket.send", "bytes": payload(text, encoding)}
    return {"type": "websocket.send", "text": text}
