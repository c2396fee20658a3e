"""WebSocket framing of server messages (RFC 6455, section 5.2), for the fast path.

Pure: no I/O. A server's frames are not masked, so one text frame is the same
bytes for every client: the fast path builds it once per update and process.
"""

from __future__ import annotations

import struct

__all__ = ["text_frame"]

_FIN_TEXT = 0x81
"""FIN bit set, opcode 0x1 (text)."""
_LEN_16 = 126
"""Length marker: the next 2 bytes hold the length."""
_LEN_64 = 127
"""Length marker: the next 8 bytes hold the length."""


def text_frame(payload: bytes) -> bytes:
    """Return a complete, unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < _LEN_16:
        header = struct.pack("!BB", _FIN_TEXT, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, _LEN_16, length)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, _LEN_64, length)
    return header + payload
