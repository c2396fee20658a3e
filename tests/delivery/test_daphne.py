"""The direct frame writer and the backlog probe, on a stand-in for Daphne's objects."""

from __future__ import annotations

import functools
import socket

import pytest

from jobupdates.delivery.daphne import backlog_probe, close_framer, frame_writer, sendable_close


class Transport:
    """The attributes of Twisted's TCP transport that the writer reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.disconnecting = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self._tempDataLen += len(data)


class Protocol:
    STATE_OPEN = 1

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.closes: list[int] = []

    def sendCloseFrame(self, code: int) -> None:
        self.closes.append(code)


async def handle_reply(protocol, message):
    """Stands in for daphne.server.Server.handle_reply."""


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.setblocking(False)
    yield server, client
    server.close()
    client.close()


def daphne_send(server: socket.socket):
    protocol = Protocol(Transport(server))
    return functools.partial(handle_reply, protocol), protocol


def test_an_idle_connection_gets_the_frame_straight_on_its_socket(pair):
    server, client = pair
    send, protocol = daphne_send(server)
    write = frame_writer(send)
    assert write(b"\x81\x02hi") == 0, "expected nothing left unwritten"
    assert client.recv(100) == b"\x81\x02hi"
    assert protocol.transport.written == []
    assert backlog_probe(send)() == 0


def test_frames_queue_behind_what_twisted_holds_and_what_the_socket_refuses(pair):
    server, _client = pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    send, protocol = daphne_send(server)
    write = frame_writer(send)
    big = b"x" * 10_000_000
    left = write(big)  # the socket takes some, Twisted buffers the rest
    transport = protocol.transport
    assert len(transport.written) == 1
    assert 0 < len(transport.written[0]) < len(big)
    assert big.endswith(transport.written[0])
    assert left == len(transport.written[0]) == backlog_probe(send)()
    assert write(b"next") == left + 4  # queued behind the buffered remainder
    assert transport.written[-1] == b"next"
    assert backlog_probe(send)() == len(transport.written[0]) + 4


def test_nothing_is_written_after_the_close(pair):
    server, client = pair
    send, protocol = daphne_send(server)
    protocol.state = 3
    frame_writer(send)(b"late")
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(10)


def test_other_servers_get_no_writer_or_probe():
    async def plain_send(message):
        pass

    assert frame_writer(plain_send) is None
    assert backlog_probe(plain_send) is None
    assert close_framer(plain_send) is None


@pytest.mark.parametrize(
    ("code", "sendable"),
    [(1000, True), (1011, False), (1012, False), (1013, False), (4503, True), (4999, True)],
)
def test_which_close_codes_daphne_can_send_from_websocket_close(code, sendable):
    from autobahn.websocket.protocol import WebSocketProtocol

    class Recorder:
        def sendCloseFrame(self, code=None, **_):
            self.sent = code

    recorder = Recorder()
    try:  # what autobahn itself says, not a copy of its rule
        WebSocketProtocol.sendClose(recorder, code=code)
    except Exception:
        assert not sendable
    else:
        assert sendable
        assert recorder.sent == code
    assert sendable_close(code) is sendable


def test_the_close_framer_sends_any_code_while_the_connection_is_open(pair):
    server, _ = pair
    send, protocol = daphne_send(server)
    close = close_framer(send)
    assert close is not None
    close(1011)
    protocol.state = 3
    close(1011)
    assert protocol.closes == [1011]
