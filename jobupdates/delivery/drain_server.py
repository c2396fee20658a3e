"""Daphne that drains its WebSocket clients before it stops (SIGTERM, SIGINT).

``python -m jobupdates.delivery.drain_server [daphne options] <module>:<application>``
runs Daphne's own command line with :class:`DrainingServer`;
``python -m botrix_site.serve`` uses it with the project's flags.

Stock Daphne answers SIGTERM by cancelling every application instance (its
"before shutdown" trigger ``kill_all_applications``), then Twisted closes the
sockets: every client sees 1006 (no close frame), and the consumers never run
their disconnect, so the registry keeps them until it expires. The drain runs
first, inside that trigger:

1. stop listening, so new connections go to the other processes;
2. send each open WebSocket an ``error`` frame ``server_restarting``, then a
   close frame 1012 (Service Restart), spread over ``JOBUPDATES_DRAIN_SECONDS``
   (:class:`jobupdates.delivery.drain.CloseSchedule`); clients that opened meanwhile
   are closed at the end;
3. wait, at most :data:`jobupdates.delivery.drain.SETTLE_SECONDS`, for the closing
   handshakes and for each consumer to finish its ordinary
   ``websocket.disconnect`` (admission release, registry unregister);
4. hand over to Daphne's ``kill_all_applications`` for whatever is left.

It reaches into Daphne's internals (``Server.connections``,
``listen_success``, ``kill_all_applications``) and autobahn's
(``sendCloseFrame``: its ``sendClose`` refuses 1012), as of daphne 4.2
(:mod:`jobupdates.delivery.internals` lists them with the versions tested).
The start-up probe (:func:`jobupdates.delivery.lean_server.start_up`) checks
them: if one is gone, the server logs ``drain unavailable`` and Daphne stops
as stock. The command line refuses to start when a name without a fallback
is missing (Daphne's ``CommandLineInterface.server_class`` among them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from daphne.cli import CommandLineInterface  # installs Twisted's asyncio reactor
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import defer, reactor

from jobupdates.conf import conf
from jobupdates.delivery.drain import SETTLE_SECONDS, CloseSchedule, restarting_message
from jobupdates.delivery.internals import Feature, Report
from jobupdates.delivery.lean_server import LeanServer, start_up
from jobupdates.protocol import CloseCode, ErrorCode, error_frame
from jobupdates.protocol.encodings import Encoding, payload
from jobupdates.protocol.logs import loggable

__all__ = ["DrainingCommandLineInterface", "DrainingServer"]

logger = logging.getLogger(__name__)

TICK = 0.01
"""Shortest sleep between two batches of closes."""


def _is_open(protocol: Any) -> bool:
    return isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN


def _close_restarting(protocol: Any, text: str) -> None:
    """Send ``server_restarting`` (JSON ``text``, in the connection's encoding), then
    close 1012, if the connection is still open."""
    if not _is_open(protocol):
        return
    encoding = Encoding.of(getattr(protocol, "websocket_protocol_in_use", None))
    try:
        protocol.sendMessage(payload(text, encoding), encoding.binary)
        protocol.sendCloseFrame(code=int(CloseCode.SERVICE_RESTART))
    except Exception:
        logger.warning("drain: could not close %s with 1012", loggable(protocol), exc_info=True)


class DrainingServer(LeanServer):
    """Daphne's server, lean (:mod:`jobupdates.delivery.lean_server`), with the drain
    run before its stock shutdown."""

    drain_ports: list[Any]
    drainable = False
    """Whether a stop drains (the probe found what the drain needs)."""

    def start(self, found: Report) -> None:
        super().start(found)
        self.drain_ports = []
        self.drainable = found.available(Feature.DRAIN)
        if self.drainable:  # else start_up warned: "drain unavailable: ..."
            reactor.callWhenRunning(self._announce)

    def _announce(self) -> None:
        """Log, once the signal handlers are in place, that a stop will drain."""
        logger.info(
            "drain: ready; on SIGTERM or SIGINT, closes WebSocket clients over %g s "
            "(server_restarting, close 1012)",
            conf.DRAIN_SECONDS,
        )

    def listen_success(self, port: Any) -> None:
        self.drain_ports.append(port)
        super().listen_success(port)

    def kill_all_applications(self) -> Any:
        """Daphne's "before shutdown" trigger: drain, then Daphne's own."""
        if not self.drainable or not isinstance(getattr(self, "connections", None), dict):
            return super().kill_all_applications()
        drained: defer.Deferred[None] = defer.Deferred.fromFuture(
            asyncio.ensure_future(self.drain())
        )
        drained.addErrback(
            lambda failure: logger.error(
                "drain failed: %s", failure.getErrorMessage(), exc_info=failure.value
            )
        )
        drained.addCallback(lambda _: super(DrainingServer, self).kill_all_applications())
        return drained

    async def drain(self) -> None:
        """Stop listening, close every open WebSocket with 1012, wait for the consumers."""
        started = time.monotonic()
        seconds = conf.DRAIN_SECONDS
        for port in self.drain_ports:
            port.stopListening()
        clients = [p for p in self.connections if _is_open(p)]
        instances = self._instances(clients)
        logger.info(
            "drain: stopped listening; closing %d WebSocket client(s) over %g s "
            "(server_restarting, close 1012)",
            len(clients),
            seconds,
        )
        text = error_frame(ErrorCode.SERVER_RESTARTING, restarting_message(seconds))
        schedule = CloseSchedule(len(clients), seconds)
        closed = 0
        while closed < len(clients):
            elapsed = time.monotonic() - started
            due = schedule.due(elapsed)
            for protocol in clients[closed:due]:
                _close_restarting(protocol, text)
            closed = max(closed, due)
            if closed < len(clients):
                await asyncio.sleep(max(schedule.at(closed) - elapsed, TICK))
        late = [p for p in self.connections if _is_open(p)]
        instances += self._instances(late)
        for protocol in late:
            _close_restarting(protocol, text)
        closed_at = time.monotonic() - started
        pending = [i for i in instances if not i.done()]
        if pending:
            _, pending_set = await asyncio.wait(pending, timeout=SETTLE_SECONDS)
            pending = list(pending_set)
        logger.info(
            "drain: closed %d WebSocket client(s) (%d opened during the drain) in %.2f s; "
            "%d consumer(s) finished their disconnect, %d still running after %.2f s "
            "(cancelled next)",
            len(clients) + len(late),
            len(late),
            closed_at,
            len(instances) - len(pending),
            len(pending),
            time.monotonic() - started,
        )

    def _instances(self, protocols: list[Any]) -> list[asyncio.Future[Any]]:
        """Return the application instances (consumers) serving ``protocols``."""
        found = (self.connections.get(p, {}).get("application_instance") for p in protocols)
        return [instance for instance in found if instance is not None]


class DrainingCommandLineInterface(CommandLineInterface):  # type: ignore[misc]
    """Daphne's command line, serving with :class:`DrainingServer`."""

    server_class = DrainingServer

    def run(self, args: list[str]) -> None:
        """Refuse to start without what has no fallback (the server warns of the rest)."""
        start_up(announce=False)
        super().run(args)


if __name__ == "__main__":
    DrainingCommandLineInterface.entrypoint()
