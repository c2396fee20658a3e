"""Daphne's connections made lean: the input queue and the protocol options."""

from __future__ import annotations

import asyncio

import pytest
from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet.testing import StringTransport

from jobupdates.delivery import lean_server
from jobupdates.delivery.compression import Compressing, Refusals
from jobupdates.delivery.internals import probe
from jobupdates.delivery.lean_server import Inbox, lean_protocol


async def test_the_inbox_gives_items_in_order_and_wakes_a_waiting_getter():
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert (inbox.qsize(), await inbox.get(), await inbox.get(), inbox.empty()) == (2, 1, 2, True)
    getter = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not getter.done()
    inbox.put_nowait("connect")
    assert await asyncio.wait_for(getter, 5) == "connect"


async def test_a_getter_cancelled_while_waiting_takes_nothing():
    inbox = Inbox()
    cancelled = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("disconnect")  # wakes it, but it is cancelled before it runs
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert await asyncio.wait_for(inbox.get(), 5) == "disconnect"


async def test_several_getters_are_served_in_turn():
    inbox = Inbox()
    getters = [asyncio.ensure_future(inbox.get()) for _ in range(3)]
    await asyncio.sleep(0)
    for item in "abc":
        inbox.put_nowait(item)
    assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 5)) == ["a", "b", "c"]


def daphne_factory() -> WebSocketFactory:
    """A WebSocket factory configured as Daphne's ``Server.run`` configures it."""
    factory = WebSocketFactory(object(), server="test")
    factory.setProtocolOptions(
        autoPingTimeout=30,
        allowNullOrigin=True,
        openHandshakeTimeout=7,
        maxMessagePayloadSize=1024,
        maxFramePayloadSize=512,
    )
    return factory


def test_the_lean_protocol_holds_the_factory_options_and_copies_none_per_connection():
    factory = daphne_factory()
    stock = factory.buildProtocol(("127.0.0.1", 1))
    stock.makeConnection(StringTransport())
    factory.protocol = lean_protocol(factory)
    lean = factory.buildProtocol(("127.0.0.1", 1))
    lean.makeConnection(StringTransport())
    options = WebSocketProtocol.CONFIG_ATTRS
    assert isinstance(lean, WebSocketProtocol)
    assert set(options) <= set(vars(stock)), "expected stock autobahn to copy every option"
    assert not set(options) & set(vars(lean)), "expected no option copied onto the connection"
    assert len(vars(lean)) <= len(vars(stock)) - len(options)
    changed = {"failByDrop"}  # a protocol failure closes with its code (compression.Refusals)
    for name in set(options) - changed:  # the same values, read through the class
        assert getattr(lean, name) == getattr(stock, name), name
    assert (stock.failByDrop, lean.failByDrop) == (True, False)
    assert (lean.openHandshakeTimeout, lean.maxMessagePayloadSize) == (7, 1024)
    assert lean.perMessageCompressionAccept([]) is None, "expected a callable option unbound"
    assert not isinstance(lean, Compressing), "expected compression only when asked for"


def test_the_lean_protocol_with_deflate_accepts_offers_and_compresses_on_its_own():
    factory = daphne_factory()
    factory.protocol = lean_protocol(factory, deflate=True)
    lean = factory.buildProtocol(("127.0.0.1", 1))
    assert isinstance(lean, Compressing)
    assert isinstance(lean, Refusals)
    accept = lean.perMessageCompressionAccept([PerMessageDeflateOffer()])
    assert "server_no_context_takeover" in accept.get_extension_string()


def test_the_server_runs_stock_when_the_probe_misses_a_lean_name(monkeypatch):
    scheduled: list[object] = []
    monkeypatch.setattr(lean_server.reactor, "callWhenRunning", scheduled.append)
    server = lean_server.LeanServer.__new__(lean_server.LeanServer)  # no run(): no reactor
    server.start(probe())
    assert (server.lean, server.deflate, len(scheduled)) == (True, True, 1)
    monkeypatch.setattr(WebSocketServerProtocol, "CONFIG_ATTRS", None)  # autobahn's, inherited
    server.start(probe())
    assert (server.lean, server.deflate, len(scheduled)) == (False, False, 1)


@pytest.mark.parametrize(("lean", "queue"), [(True, Inbox), (False, asyncio.Queue)])
async def test_an_application_receives_from_the_queue_the_server_returns(lean, queue):
    received: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def application(scope, receive, send):
        await received.put(await receive())

    server = lean_server.LeanServer.__new__(lean_server.LeanServer)  # no run(): no reactor
    server.application, server.lean = application, lean
    protocol = object()
    server.connections = {protocol: {}}
    inbox = server.create_application(protocol, {"type": "websocket"})
    assert type(inbox) is queue, "expected stock Daphne's queue when not lean"
    inbox.put_nowait({"type": "websocket.connect"})
    assert await asyncio.wait_for(received.get(), 5) == {"type": "websocket.connect"}
    await server.connections[protocol]["application_instance"]
