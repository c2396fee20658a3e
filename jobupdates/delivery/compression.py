"""permessage-deflate (RFC 7692) and the message size limit, on the lean server's connections.

Compressing per connection is what makes WebSocket compression expensive: a
``zlib`` compressor is about 256 KB of state, and compressing each update
once per client multiplies the CPU by the clients. So the server answers
every offer with ``server_no_context_takeover`` (each message is compressed
on its own) and ``client_no_context_takeover``, and keeps no compressor or
decompressor between messages:

* a job update's compressed frame is built once per process and written to
  every client that negotiated compression (:class:`jobupdates.protocol.wire.Framing`,
  the fast path in :mod:`jobupdates.delivery.feed`);
* every other message (welcome, replay, errors) is compressed on its own by
  :class:`Compressing`, which replaces autobahn's per-connection compressor;
* a client's compressed message is held to the limits of a plain one: autobahn
  inflates it up to Daphne's message limit (``--websocket_max_message_size``,
  1 MiB) and no further, and :class:`Refusals` answers
  ``frame_too_large`` and closes with 1009, as for a plain message over that
  limit (no "deflate bomb"); under it, the consumer's own frame limit applies.

Offers asking the server for a smaller window (``server_max_window_bits`` below
15) are declined: those clients get plain frames.

Both mixins override or read autobahn's private names (``_perMessageCompress``,
``_max_message_size_exceeded``, ...), listed in :mod:`jobupdates.delivery.internals`:
without them the lean server leaves compression off, or runs as stock Daphne.
"""

from __future__ import annotations

import logging
from typing import Any

from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

from jobupdates.protocol.encodings import Encoding, payload
from jobupdates.protocol.frames import CloseCode, ErrorCode, error_frame
from jobupdates.protocol.logs import loggable
from jobupdates.protocol.wire import DEFLATE_WINDOW_BITS, Framing

__all__ = ["Compressing", "Refusals", "accept_offers"]

logger = logging.getLogger(__name__)

_NO_SERVER_CONTEXT = "; server_no_context_takeover"


class _Accept(PerMessageDeflateOfferAccept):
    """autobahn's acceptance, always saying ``server_no_context_takeover`` (autobahn
    says it only when the client asked, though the server may say it anyway)."""

    def get_extension_string(self) -> str:
        text = str(super().get_extension_string())  # type: ignore[no-untyped-call]
        if _NO_SERVER_CONTEXT in text:
            return text
        name, _, rest = text.partition(";")
        return name + _NO_SERVER_CONTEXT + (";" + rest if rest else "")


def accept_offers(offers: list[Any]) -> PerMessageDeflateOfferAccept | None:
    """Accept the first of autobahn's parsed offers (in the client's order) that is a
    permessage-deflate offer the server can serve, or none."""
    for offer in offers:
        if not isinstance(offer, PerMessageDeflateOffer):
            continue
        if offer.request_max_window_bits not in (0, DEFLATE_WINDOW_BITS):
            continue  # the shared frames are compressed with the full window
        return _Accept(  # type: ignore[no-untyped-call]
            offer,
            request_no_context_takeover=bool(offer.accept_no_context_takeover),
            no_context_takeover=True,
        )
    return None


class Compressing:
    """Mixin for autobahn's server protocol: compress each message on its own, with no
    compressor kept per connection, and drop the decompressor between messages."""

    _perMessageCompress: Any  # noqa: N815 - autobahn's name
    state: Any
    STATE_OPEN: Any

    def sendMessage(  # noqa: N802 - autobahn's name
        self,
        payload: bytes,
        isBinary: bool = False,  # noqa: N803
        fragmentSize: int | None = None,  # noqa: N803
        sync: bool = False,
        doNotCompress: bool = False,  # noqa: N803
    ) -> None:
        if (
            self._perMessageCompress is None
            or doNotCompress
            or fragmentSize is not None
            or self.state != self.STATE_OPEN
        ):
            super().sendMessage(  # type: ignore[misc]
                payload, isBinary, fragmentSize, sync, doNotCompress
            )
            return
        self.sendData(Framing(binary=isBinary, compressed=True).build(payload), sync=sync)  # type: ignore[attr-defined]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803
        super().onMessage(payload, isBinary)  # type: ignore[misc]
        extension = self._perMessageCompress
        if extension is not None and extension.client_no_context_takeover:
            extension._decompressor = None  # about 40 KB; a new one per message anyway


class Refusals:
    """Mixin for autobahn's server protocol: a message over the server's limit (after
    inflating, if compressed) gets a ``frame_too_large`` error, then close 1009,
    instead of autobahn's bare close; every other protocol failure (a corrupt
    compressed frame: 1007) is logged with its reason, which autobahn keeps to
    its own logger."""

    websocket_protocol_in_use: str | None
    failedByMe: bool  # noqa: N815 - autobahn's name
    state: Any
    STATE_OPEN: Any
    STATE_CLOSED: Any

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        if self.state != self.STATE_OPEN:  # a second part of the same message: drop
            super()._max_message_size_exceeded(msg_size, max_msg_size, reason)  # type: ignore[misc]
            return
        logger.info("refused a client message: frame_too_large: %s", loggable(reason))
        encoding = Encoding.of(self.websocket_protocol_in_use)
        inflated = " inflated" if getattr(self, "_isMessageCompressed", False) else ""
        message = f"expected a message of at most {max_msg_size} bytes{inflated}, got more"
        self.sendMessage(  # type: ignore[attr-defined]
            payload(error_frame(ErrorCode.FRAME_TOO_LARGE, message), encoding), encoding.binary
        )
        self.failedByMe = True  # autobahn ignores the rest of the message from here
        # a closing handshake, not autobahn's abort, which would discard the error frame
        self.sendCloseFrame(code=int(CloseCode.MESSAGE_TOO_BIG), isReply=False)  # type: ignore[attr-defined]

    def _fail_connection(self, code: int = 1001, reason: str = "going away") -> None:
        if self.state != self.STATE_CLOSED:
            logger.info(
                "failing a WebSocket connection from %s with %d: %s",
                loggable(getattr(self, "peer", "?")),
                code,
                loggable(reason),
            )
        super()._fail_connection(code, reason)  # type: ignore[misc]
