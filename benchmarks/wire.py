"""What the clients offer and how they read what comes back: permessage-deflate, msgpack,
and the bytes a socket received.

Used on both sides: the harness names a target's :class:`Offer`; the load
generator (:mod:`benchmarks.loadgen`) sends its headers, reads what the server
agreed to (:func:`negotiated`), inflates compressed frames (:class:`Inflater`),
decodes msgpack ones (:func:`decode`), and reads the kernel's count of TCP
payload bytes received on each socket (:func:`tcp_bytes_received`). Standard
library and msgpack only: the generator process imports nothing else of the
project.
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack  # pinned in requirements.txt (the project's msgpack subprotocol)

__all__ = [
    "DEFLATE_OFFER",
    "MSGPACK_SUBPROTOCOL",
    "Inflater",
    "Negotiated",
    "Offer",
    "decode",
    "negotiated",
    "tcp_bytes_received",
]

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
"""What a browser and ``websockets``' ``connect`` (``compression="deflate"``) offer."""
MSGPACK_SUBPROTOCOL = "jobupdates.v1.msgpack"
"""The subprotocol for which the server sends msgpack in binary frames."""
EXTENSIONS = "Sec-WebSocket-Extensions"
PROTOCOL = "Sec-WebSocket-Protocol"
DEFLATE_TAIL = b"\x00\x00\xff\xff"
"""RFC 7692 7.2.2: removed by the sender from each compressed message, put back to inflate."""
_TCP_INFO_BYTES_RECEIVED = 128
"""Offset of ``tcpi_bytes_received`` (u64, Linux 4.1+) in ``struct tcp_info``."""
_TCP_INFO_SIZE = 256


@dataclass(frozen=True)
class Offer:
    """What every client of a target offers in its opening handshake."""

    deflate: bool = False
    subprotocol: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The handshake headers that make the offer."""
        headers = {EXTENSIONS: DEFLATE_OFFER} if self.deflate else {}
        if self.subprotocol:
            headers[PROTOCOL] = self.subprotocol
        return headers

    def describe(self) -> str:
        """E.g. ``permessage-deflate + jobupdates.v1.msgpack``; ``nothing`` for no offer."""
        parts = [*(["permessage-deflate"] if self.deflate else []), self.subprotocol or ""]
        return " + ".join(p for p in parts if p) or "nothing"


@dataclass(frozen=True)
class Negotiated:
    """What the server's 101 answer agreed to."""

    deflate: bool = False
    server_no_context_takeover: bool = False
    subprotocol: str | None = None

    @property
    def label(self) -> str:
        """E.g. ``deflate (no context takeover)``, ``msgpack``, ``none``: for the counts."""
        parts = []
        if self.deflate:
            parts.append(
                "deflate" + (" (no context takeover)" if self.server_no_context_takeover else "")
            )
        if self.subprotocol:
            parts.append(self.subprotocol)
        return " + ".join(parts) or "none"


def negotiated(headers: Any) -> Negotiated:
    """Read the 101 response's headers (a case-insensitive mapping, as picows gives)."""
    deflate = no_takeover = False
    for extension in ",".join(headers.getall(EXTENSIONS, [])).split(","):
        name, *params = (part.strip() for part in extension.split(";"))
        if name == "permessage-deflate":
            deflate = True
            no_takeover = "server_no_context_takeover" in params
    return Negotiated(deflate, no_takeover, headers.get(PROTOCOL) or None)


class Inflater:
    """Inflates one connection's compressed messages (RFC 7692).

    With ``server_no_context_takeover`` each message stands alone, so identical
    compressed bytes always mean the same message (the generator may decode
    them once for every connection: ``shared``); otherwise the window carries
    over from message to message and every frame of the connection must pass
    through its own decompressor, in order.
    """

    __slots__ = ("_decompressor", "shared")

    def __init__(self, server_no_context_takeover: bool) -> None:
        self.shared = server_no_context_takeover
        self._decompressor = None if self.shared else zlib.decompressobj(-zlib.MAX_WBITS)

    def inflate(self, payload: bytes) -> bytes:
        if self._decompressor is None:
            return zlib.decompressobj(-zlib.MAX_WBITS).decompress(payload + DEFLATE_TAIL)
        return self._decompressor.decompress(payload + DEFLATE_TAIL)


def decode(message: bytes, binary: bool) -> dict[str, Any]:
    """Decode one (inflated) message: msgpack if it came in a binary frame, else JSON."""
    value = msgpack.unpackb(message) if binary else json.loads(message)
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def tcp_bytes_received(sock: Any) -> int:
    """Return the TCP payload bytes ``sock`` has received so far (``TCP_INFO``).

    The kernel's count of in-order bytes off the wire: WebSocket frame headers,
    control frames and the HTTP handshake included, TCP/IP headers not.
    ``sock``: a socket, or the ``socket`` extra info of an asyncio (uvloop)
    transport.
    """
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    if len(info) < _TCP_INFO_BYTES_RECEIVED + 8:
        raise OSError("this kernel's TCP_INFO has no tcpi_bytes_received (Linux 4.1+)")
    (received,) = struct.unpack_from("Q", info, _TCP_INFO_BYTES_RECEIVED)
    return int(received)
