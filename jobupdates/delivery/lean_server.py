"""Daphne with leaner connections: the same protocol, less memory and CPU per connection.

Measured per WebSocket connection (docs/performance.md, "Where a
connection's memory and handshake time go"), stock Daphne spends:

* about 2.9 KB on each application's input queue: an ``asyncio.Queue`` is
  four ``deque`` objects (items, getters, putters, and its ``Event``'s
  waiters), for the few messages a connection's application ever receives.
  :class:`Inbox` is a list and, only while the application waits, a future;
* about 90 us, and a larger instance dictionary, on autobahn copying its 29
  protocol options from the factory onto every protocol instance and
  pretty-printing them for a debug log line nobody reads (autobahn's
  ``WebSocketProtocol._connectionMade``). :func:`lean_protocol` makes the
  options class attributes of a subclass of Daphne's protocol, built once
  the factory is configured, and leaves nothing to copy.

:class:`LeanServer` is Daphne's ``Server`` with both. It reaches into Daphne's
``create_application`` (replaced, same contract) and ``ws_factory``, and
autobahn's ``CONFIG_ATTRS``, as of daphne 4.2 and autobahn 26.10
(:mod:`jobupdates.delivery.internals` lists them with the versions tested);
if one is gone the server runs as stock Daphne and logs a warning. Options
set on the factory after start-up would not reach new connections (Daphne
sets them once, before).

The server starts with :func:`start_up`: the process's probe of every
private name the project relies on. Without one that has no fallback it
refuses to start, naming the package, its version and the name; each feature
that falls back, and each package outside the tested versions, gets a
WARNING.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

from jobupdates.conf import conf
from jobupdates.delivery import internals
from jobupdates.delivery.compression import Compressing, Refusals, accept_offers
from jobupdates.delivery.internals import Feature, Report

__all__ = ["Inbox", "LeanServer", "lean_protocol", "start_up"]

logger = logging.getLogger(__name__)


class Inbox:
    """An application's input queue: what Daphne needs of an ``asyncio.Queue``.

    ``put_nowait`` from the server, ``get`` from the application (one getter
    at a time in practice; several are served in turn). A getter cancelled
    while it waits takes nothing: the items stay for the next ``get``.
    """

    __slots__ = ("_items", "_waiters")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        """Queue ``item`` and wake every waiting getter (each checks again)."""
        self._items.append(item)
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> Any:
        """Return the oldest item, waiting for one if there is none."""
        while not self._items:
            if self._waiters is None:
                self._waiters = []
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        return self._items.pop(0)


def lean_protocol(factory: Any, *, deflate: bool = False) -> type[WebSocketProtocol]:
    """A subclass of ``factory.protocol`` holding the factory's options as class attributes.

    autobahn copies each of ``CONFIG_ATTRS`` from the factory onto a protocol
    unless the protocol already has it; the subclass has them all, with the
    values the factory has now, and an empty ``CONFIG_ATTRS``. A callable
    option (``perMessageCompressionAccept``) is a ``staticmethod``, so that
    it is not bound to the protocol as a method would be.

    The subclass refuses an oversize message with an error frame
    (:class:`~jobupdates.delivery.compression.Refusals`), and with
    ``deflate`` it negotiates permessage-deflate
    (:mod:`jobupdates.delivery.compression`).
    """
    base = factory.protocol
    options = {name: _option(getattr(factory, name)) for name in base.CONFIG_ATTRS}
    # a protocol violation (a corrupt compressed frame, an unmasked frame) closes with its
    # RFC 6455 code (1002, 1007) instead of autobahn's drop (seen as 1006, no reason)
    options["failByDrop"] = False
    bases: tuple[type, ...] = (Refusals, base)
    if deflate:
        options["perMessageCompressionAccept"] = staticmethod(accept_offers)
        bases = (Compressing, *bases)
    attributes = {**options, "CONFIG_ATTRS": (), "__module__": __name__, "__slots__": ()}
    lean: type[WebSocketProtocol] = type(f"Lean{base.__name__}", bases, attributes)
    return lean


def _option(value: Any) -> Any:
    return staticmethod(value) if callable(value) else value


def start_up(*, announce: bool = True) -> Report:
    """The project's server starting: return this process's probe
    (:func:`jobupdates.delivery.internals.probed`), or refuse to start (``SystemExit``,
    logged) when a feature without a fallback lacks a name. With ``announce``, log each
    feature that falls back and each package outside the tested versions (WARNING)."""
    found = internals.probed()
    refusal = found.refusal()
    if refusal is not None:
        logger.critical("refusing to start: %s", refusal)
        raise SystemExit(f"refusing to start: {refusal}")
    if announce:
        for line in found.fallbacks() + found.untested():
            logger.warning("%s", line)
        logger.info(
            "internals: %d private names probed (%s): %s",
            len(internals.INTERNALS),
            ", ".join(f"{package} {version}" for package, version in found.versions.items()),
            f"{len(found.missing)} missing" if found.missing else "all there",
        )
    return found


class LeanServer(Server):  # type: ignore[misc]  # daphne is untyped
    """Daphne's server with :class:`Inbox` queues and :func:`lean_protocol` connections."""

    lean = False
    """Whether this server runs lean (the probe passed)."""

    deflate = False
    """Whether this server may negotiate permessage-deflate (the probe passed)."""

    def run(self) -> None:
        self.start(start_up())
        super().run()

    def start(self, found: Report) -> None:
        """Decide, by the start-up probe, what runs lean (subclasses decide more)."""
        self.lean = found.available(Feature.LEAN)
        self.deflate = self.lean and found.available(Feature.DEFLATE)
        if self.lean:
            reactor.callWhenRunning(self._use_lean_protocol)

    def _use_lean_protocol(self) -> None:
        """Swap the WebSocket factory's protocol, once Daphne has configured the factory."""
        deflate = conf.PERMESSAGE_DEFLATE and self.deflate
        self.ws_factory.protocol = lean_protocol(self.ws_factory, deflate=deflate)
        if deflate:
            compression = "on"
        elif self.deflate:
            compression = "off (JOBUPDATES_PERMESSAGE_DEFLATE)"
        else:
            compression = "off (autobahn's internals are missing, see the warning)"
        logger.info(
            "lean connections: on (autobahn options per class, light input queues); "
            "permessage-deflate: %s",
            compression,
        )

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        """Daphne's ``create_application`` (daphne 4.2), with an :class:`Inbox`
        instead of an ``asyncio.Queue`` (Daphne's own if not lean)."""
        if not self.lean:
            return super().create_application(protocol, scope)
        assert "application_instance" not in self.connections[protocol]
        inbox = Inbox()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(
            scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(instance)
        return inbox
