"""The probe of other packages' private names: it finds them all, in the tested versions,
and when one is taken away, notices, and what needs it falls back or refuses to start."""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Iterator
from importlib import metadata

import channels_redis.utils
import pytest
from autobahn.twisted.websocket import WebSocketServerProtocol
from daphne.server import Server
from twisted.internet.abstract import FileDescriptor

from jobupdates.delivery import daphne, drain_server, internals, lean_server
from jobupdates.delivery.internals import (
    INTERNALS,
    TESTED,
    Feature,
    Internal,
    Kind,
    Range,
    probe,
)

PACKAGES = ("daphne", "autobahn", "Twisted", "channels", "channels-redis")


@pytest.fixture(autouse=True)
def fresh_probe() -> Iterator[None]:
    """Each test's process probe is made afresh (after its monkeypatches), and forgotten."""
    internals.probed.cache_clear()
    yield
    internals.probed.cache_clear()


@pytest.fixture
def scheduled(monkeypatch) -> list[object]:
    """What the servers ask the reactor to run once it runs (it never does, here)."""
    calls: list[object] = []
    monkeypatch.setattr(lean_server.reactor, "callWhenRunning", calls.append)
    return calls


@pytest.mark.parametrize("package", PACKAGES)
def test_every_installed_version_is_one_the_project_is_tested_on(package):
    version = metadata.version(package)
    assert TESTED[package].contains(version), (
        f"{package} {version} is outside the tested range {TESTED[package].specifier}: run the "
        "whole suite on it, then widen the range in jobupdates/delivery/internals.py and "
        "pyproject.toml, or pin a tested version in requirements.txt"
    )


def test_the_probe_finds_every_name_and_the_installed_versions():
    found = probe()
    assert [str(m) for m in found.missing] == []
    assert found.versions == {p: metadata.version(p) for p in PACKAGES}
    assert (found.unavailable, found.refusal(), found.fallbacks(), found.untested()) == (
        {},
        None,
        [],
        [],
    )


def test_every_name_belongs_to_a_tested_package_and_every_feature_has_names():
    assert {internal.package for internal in INTERNALS} == set(PACKAGES) == set(TESTED)
    assert {f for internal in INTERNALS for f in internal.features} == set(Feature)
    assert len({(i.owner, i.name) for i in INTERNALS}) == len(INTERNALS), "expected no duplicate"
    fatal = {f for f in Feature if f.fallback is None}
    assert fatal == {Feature.SERVER, Feature.LAYER, Feature.CONSUMER}


@pytest.mark.parametrize(
    ("version", "inside"),
    [
        ("4.2.1", False),
        ("4.2.2", True),
        ("4.2.3", True),
        ("4.2.10", True),
        ("4.2.2.post1", True),
        ("4.3", False),
        ("4.3.0rc1", False),
        ("5.0", False),
        ("4", False),
    ],
)
def test_a_range_holds_its_minimum_and_stops_below_its_end(version, inside):
    assert Range("daphne", "4.2.2", "4.3").contains(version) is inside


class Stub:
    """An owner whose names the probe looks up (the module's source is read)."""

    kept = 1
    CONFIG_ATTRS = ("openHandshakeTimeout", "failByDrop")

    def __init__(self) -> None:
        self.assigned: int = 2
        self.compared = self.assigned == 2


@pytest.mark.parametrize(
    ("name", "kind", "present"),
    [
        ("kept", Kind.ATTRIBUTE, True),
        ("gone", Kind.ATTRIBUTE, False),
        ("assigned", Kind.ASSIGNED, True),
        ("kept", Kind.ASSIGNED, False),  # a class attribute, never `self.kept = ...`
        ("failByDrop", Kind.OPTION, True),
        ("openHandshakeTimeout", Kind.OPTION, True),
        ("autoPingTimeout", Kind.OPTION, False),
        ("self.assigned == 2", Kind.SOURCE, True),
        ("self.gone == 2", Kind.SOURCE, False),
    ],
)
def test_each_kind_of_name_is_looked_up(name, kind, present):
    internal = Internal("daphne", f"{__name__}:Stub", name, (Feature.LEAN,), kind)
    assert probe_of(internal) is present


def probe_of(internal: Internal) -> bool:
    owner, problem = internals._owner(internal.owner)
    assert problem is None
    return internals._present(internal, owner)


@pytest.mark.parametrize(
    ("owner", "problem"),
    [
        ("jobupdates.nowhere:Server", "cannot import jobupdates.nowhere (ModuleNotFoundError: "),
        ("jobupdates.delivery.internals:Nowhere", "no jobupdates.delivery.internals.Nowhere"),
    ],
)
def test_the_names_of_an_owner_that_is_gone_are_missing_with_why_said_once(
    monkeypatch, owner, problem
):
    gone = [Internal("daphne", owner, name, (Feature.LEAN,)) for name in ("run", "stop")]
    monkeypatch.setattr(internals, "INTERNALS", (*INTERNALS, *gone))
    found = probe()
    assert [m.internal for m in found.missing] == gone
    [line] = found.fallbacks()
    prefix = f"lean connections unavailable: missing daphne {found.versions['daphne']}: "
    assert line.startswith(prefix + problem), line
    assert line.count(problem) == 1, line


def test_options_that_are_not_a_list_of_names_are_missing(monkeypatch):
    monkeypatch.setattr(WebSocketServerProtocol, "CONFIG_ATTRS", None)
    found = probe()
    assert set(found.unavailable) == {Feature.LEAN, Feature.DEFLATE}
    assert "CONFIG_ATTRS naming failByDrop" in "; ".join(found.fallbacks())


def test_a_missing_drain_name_is_noticed_and_the_server_stops_as_stock(
    monkeypatch, caplog, scheduled
):
    monkeypatch.delattr(Server, "listen_success")
    with caplog.at_level(logging.INFO, logger=lean_server.__name__):
        found = lean_server.start_up()
    assert list(found.unavailable) == [Feature.DRAIN]
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    version = metadata.version("daphne")
    assert warning.startswith(
        f"drain unavailable: missing daphne {version}: daphne.server.Server.listen_success; "
        "on SIGTERM clients will be dropped without a close frame (1006)"
    ), warning
    server = drain_server.DrainingServer.__new__(drain_server.DrainingServer)
    server.start(found)
    assert (server.lean, server.deflate, server.drainable) == (True, True, False)
    assert [call.__name__ for call in scheduled] == ["_use_lean_protocol"], "no drain announced"


def test_missing_deflate_names_leave_the_server_lean_without_compression(monkeypatch, scheduled):
    options = tuple(WebSocketServerProtocol.CONFIG_ATTRS)
    without = tuple(name for name in options if name != "perMessageCompressionAccept")
    monkeypatch.setattr(WebSocketServerProtocol, "CONFIG_ATTRS", without)
    server = lean_server.LeanServer.__new__(lean_server.LeanServer)
    server.start(lean_server.start_up())
    assert (server.lean, server.deflate) == (True, False)


def test_the_fast_path_falls_back_to_daphnes_send_without_twisteds_buffer(monkeypatch):
    server, client = socket.socketpair()
    try:

        class Transport:
            def __init__(self) -> None:
                self.socket = server
                self.dataBuffer, self.offset, self._tempDataLen = b"", 0, 0
                self.disconnecting, self.connected = False, 1

            def abortConnection(self) -> None:
                pass

        class Protocol:
            STATE_OPEN = state = 3
            transport = Transport()

            def sendCloseFrame(self, code: int) -> None:
                pass

        async def handle_reply(protocol, message):
            pass

        send = functools.partial(handle_reply, Protocol())
        assert daphne.frame_writer(send) is not None
        assert daphne.backlog_probe(send) is not None
        monkeypatch.delattr(FileDescriptor, "offset")
        internals.probed.cache_clear()
        assert list(internals.probed().unavailable) == [Feature.DIRECT_WRITE]
        assert (daphne.frame_writer(send), daphne.backlog_probe(send)) == (None, None)
        assert daphne.close_framer(send) is not None, "expected close frames still sent"
    finally:
        server.close()
        client.close()


def test_a_missing_name_without_fallback_refuses_the_start(monkeypatch, caplog):
    monkeypatch.delattr(channels_redis.utils, "_wrap_close")
    version = metadata.version("channels-redis")
    expected = (
        f"refusing to start: the fast channel layer cannot run without channels-redis "
        f"{version}: channels_redis.utils._wrap_close (no fallback); install the versions "
        "the project is tested on: pip install 'channels-redis>=4.3.0,<4.4'"
    )
    with pytest.raises(SystemExit) as refused:
        lean_server.LeanServer.__new__(lean_server.LeanServer).run()
    assert str(refused.value) == expected
    assert expected in caplog.text
    with pytest.raises(SystemExit, match=r"channels_redis\.utils\._wrap_close"):
        drain_server.DrainingCommandLineInterface().run(["botrix_site.asgi:application"])


def test_a_version_outside_the_tested_range_is_reported(monkeypatch):
    monkeypatch.setitem(TESTED, "daphne", Range("daphne", "0.1", "0.2"))
    found = probe()
    assert found.missing == ()
    assert found.untested() == [
        f"daphne {metadata.version('daphne')} is outside the versions the project is tested "
        "on (daphne>=0.1,<0.2)"
    ]
