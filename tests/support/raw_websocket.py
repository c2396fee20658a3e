"""A WebSocket client on a raw socket that shows each frame as it is on the wire:
its RSV1 bit (permessage-deflate), opcode and payload, compressed or not.

Written for the compression and encoding tests, which must see what the
server really sends; a client library would hide RSV1 by inflating.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import msgpack

DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
"""What browsers offer."""
_TAIL = b"\x00\x00\xff\xff"


@dataclass(frozen=True)
class WireFrame:
    """One frame as received."""

    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes

    def inflated(self) -> bytes:
        """The payload, inflated if RSV1 says it is compressed (no context takeover)."""
        if not self.rsv1:
            return self.payload
        return zlib.decompressobj(-15).decompress(self.payload + _TAIL)

    def value(self) -> Any:
        """The message: JSON for a text frame, MessagePack for a binary one."""
        data = self.inflated()
        return msgpack.unpackb(data, raw=False) if self.opcode == 0x2 else json.loads(data)


class RawWebSocket:
    """A client connection: the handshake's response headers, then frames."""

    def __init__(
        self,
        port: int,
        cookie: str | None,
        *,
        extensions: str | None = None,
        subprotocols: tuple[str, ...] = (),
        path: str = "/ws",
        receive_buffer: int | None = None,
    ) -> None:
        """``receive_buffer``: the socket's SO_RCVBUF, set before connecting (a small one
        makes the server's sends pile up soon behind a client that stops reading)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        headers = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            f"Origin: http://127.0.0.1:{port}",
        ]
        if cookie:
            headers.append(f"Cookie: {cookie}")
        if extensions:
            headers.append(f"Sec-WebSocket-Extensions: {extensions}")
        if subprotocols:
            headers.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        self._buffer = b""
        head = self._read_until(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        assert status.startswith("HTTP/1.1 101"), head[:300]
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)
        }

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"expected {marker!r}, the server closed; got {self._buffer[:300]!r}"
            self._buffer += chunk
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            chunk = self.sock.recv(65536)
            assert chunk, f"expected {size} bytes, the server closed after {len(self._buffer)}"
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_frame(self) -> WireFrame:
        """The next frame, as sent (server frames are not masked)."""
        first, second = self._read_exactly(2)
        assert not second & 0x80, "expected an unmasked server frame"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        return WireFrame(
            fin=bool(first & 0x80),
            rsv1=bool(first & 0x40),
            opcode=first & 0x0F,
            payload=self._read_exactly(length),
        )

    def read_message(self) -> WireFrame:
        """The next data frame, skipping pings."""
        while (frame := self.read_frame()).opcode == 0x9:
            pass
        return frame

    def send(
        self, payload: bytes, opcode: int = 0x1, *, compressed: bool = False, raw_rsv1: bool = False
    ) -> None:
        """Send one masked frame; ``compressed`` deflates the payload and sets RSV1,
        ``raw_rsv1`` sets RSV1 on the payload as it is."""
        if compressed:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            payload = payload.removesuffix(_TAIL)
        first = 0x80 | opcode | (0x40 if compressed or raw_rsv1 else 0)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", first, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", first, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def close_code(self) -> int:
        """Read up to the server's close frame; return its code."""
        while (frame := self.read_frame()).opcode != 0x8:
            pass
        (code,) = struct.unpack("!H", frame.payload[:2])
        return int(code)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
