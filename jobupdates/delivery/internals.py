"""Every private name of another package the project relies on, and the one probe for them.

The project's server and the fast path reach past the public interfaces of
Daphne, autobahn, Twisted, Channels and channels-redis. :data:`INTERNALS`
lists each name reached, per package, with the :class:`Feature` that needs
it; :data:`TESTED`, the versions of those packages the project is tested on
(``pyproject.toml`` declares the same ranges, and
``tests/delivery/test_internals.py`` fails when an installed version leaves
them).

:func:`probe` looks every name up and returns a :class:`Report`: what is
missing, so which features fall back (each says to what) or cannot run, and
which versions are untested. A process probes once (:func:`probed`): the
project's server at start-up, where it refuses to start without a feature
that has no fallback (:func:`jobupdates.delivery.lean_server.start_up`), and
the fast path's helpers, which fall back on what the probe did not find.
``manage.py check`` probes too (``jobupdates.E030``, ``W030``, ``W031``).

Names the project's classes derive from (channels-redis's
``RedisPubSubLoopLayer``, ``RedisSingleShardConnection``) are needed to import
:mod:`jobupdates.delivery.layers`: without them, that import fails first.
"""

from __future__ import annotations

import enum
import functools
import importlib
import inspect
import linecache
import re
from dataclasses import dataclass
from importlib import metadata
from types import CodeType
from typing import Any

__all__ = [
    "INTERNALS",
    "TESTED",
    "Feature",
    "Internal",
    "Kind",
    "Missing",
    "Range",
    "Report",
    "probe",
    "probed",
]


@dataclass(frozen=True)
class Range:
    """A package (as ``pyproject.toml`` names it) and the versions the project is tested
    on: from ``minimum`` up to, not including, ``below``."""

    package: str
    minimum: str
    below: str

    @property
    def specifier(self) -> str:
        return f">={self.minimum},<{self.below}"

    def contains(self, version: str) -> bool:
        return _release(self.minimum) <= _release(version) < _release(self.below)


def _release(version: str) -> tuple[int, ...]:
    """``"4.2.3"`` -> ``(4, 2, 3, 0)``; a pre- or post-release counts as its release."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    numbers = tuple(int(n) for n in match.group().split(".")) if match else ()
    return (*numbers, *(0,) * (4 - len(numbers)))


# CI runs the pins of requirements.txt (Python 3.11 and 3.13): each range starts there and
# stops below the next minor (autobahn and Twisted: the next month of their calendar
# versions). daphne 4.2.2 too: its cli, server and ws_protocol modules are 4.2.3's, and the
# tests of this probe, of jobupdates/delivery and the drain and compression end-to-end
# tests passed on it (by hand, with daphne 4.2.2 first on PYTHONPATH). Widen a range only
# with the suite run on the new version.
TESTED: dict[str, Range] = {
    t.package: t
    for t in (
        Range("daphne", "4.2.2", "4.3"),
        Range("autobahn", "26.10.2", "26.11"),
        Range("Twisted", "26.10.0", "26.11"),
        Range("channels", "4.3.2", "4.4"),
        Range("channels-redis", "4.3.0", "4.4"),
    )
}


class Feature(enum.Enum):
    """What the project does with other packages' private names (its label), and what runs
    when one is missing (its fallback; None: nothing, the project's server refuses to start)."""

    # jobupdates.delivery.drain_server: Daphne's command line serving with DrainingServer
    SERVER = ("the project's server", None)
    # jobupdates.delivery.lean_server, with jobupdates.delivery.compression.Refusals
    LEAN = (
        "lean connections",
        "serving as stock Daphne (a queue and a copy of autobahn's options per connection; "
        "autobahn's own close for an oversize message; no permessage-deflate)",
    )
    # jobupdates.delivery.compression.Compressing, jobupdates.delivery.daphne.negotiated_deflate
    DEFLATE = ("permessage-deflate", "permessage-deflate off: every client gets plain frames")
    # jobupdates.delivery.drain_server.DrainingServer
    DRAIN = (
        "drain",
        "on SIGTERM clients will be dropped without a close frame (1006), as stock Daphne does",
    )
    # jobupdates.delivery.daphne.close_framer: 1011 and 1013 from a consumer
    CLOSE_FRAMES = (
        "close frames with any code",
        "close codes Daphne cannot send (1011, 1013) go through its websocket.close, which "
        "fails the consumer; Daphne then drops the connection",
    )
    # jobupdates.delivery.daphne: frame_writer, backlog_probe, abort_later
    DIRECT_WRITE = (
        "direct frame writes and the write-backlog probe",
        "updates go through Daphne's send, and a client is never dropped for its unread "
        "bytes (JOBUPDATES_MAX_BACKLOG_BYTES has no effect)",
    )
    LAYER = ("the fast channel layer", None)  # jobupdates.delivery.layers
    CONSUMER = ("the lean consumer", None)  # jobupdates.delivery.connection

    @property
    def label(self) -> str:
        return str(self.value[0])

    @property
    def fallback(self) -> str | None:
        fallback: str | None = self.value[1]
        return fallback


class Kind(enum.Enum):
    """How a name is looked up on its owner."""

    ATTRIBUTE = "attribute"  # hasattr(owner, name)
    ASSIGNED = "instance attribute"  # `self.<name> =` in the owner's (or a base's) source
    OPTION = "protocol option"  # name in autobahn's owner.CONFIG_ATTRS, a list of names
    SOURCE = "code"  # the text `name` in the owner's source


@dataclass(frozen=True)
class Internal:
    """A private name of ``package``: ``owner`` is ``module`` or ``module:Class``."""

    package: str
    owner: str
    name: str
    features: tuple[Feature, ...]
    kind: Kind = Kind.ATTRIBUTE

    def __str__(self) -> str:
        owner = self.owner.replace(":", ".")
        if self.kind is Kind.SOURCE:
            return f"{self.name!r} in {owner}"
        if self.kind is Kind.OPTION:
            return f"{owner}.CONFIG_ATTRS naming {self.name}"
        return f"{owner}.{self.name}"


_SERVER = "daphne.server:Server"
_PROTOCOL = "autobahn.twisted.websocket:WebSocketServerProtocol"  # Daphne's protocol's base
_DEFLATE = "autobahn.websocket.compress_deflate:PerMessageDeflate"
_FD, _TCP = "twisted.internet.abstract:FileDescriptor", "twisted.internet.tcp:Connection"
_UTILS, _PUBSUB = "channels_redis.utils", "channels_redis.pubsub"
_LAYER = f"{_PUBSUB}:RedisPubSubChannelLayer"
_LOOP, _SHARD = f"{_PUBSUB}:RedisPubSubLoopLayer", f"{_PUBSUB}:RedisSingleShardConnection"
_DAPHNE_SEND = "partial(self.handle_reply, protocol)"  # where daphne.py finds the protocol
_F, _ATTR, _SELF, _OPTION, _CODE = Feature, Kind.ATTRIBUTE, Kind.ASSIGNED, Kind.OPTION, Kind.SOURCE
_LEAN, _DRAIN, _DEFLATE_, _WRITE = (_F.LEAN,), (_F.DRAIN,), (_F.DEFLATE,), (_F.DIRECT_WRITE,)
_LAYER_, _LEAN_DRAIN, _CLOSING = (
    (_F.LAYER,),
    (_F.LEAN, _F.DRAIN),
    (_F.LEAN, _F.DRAIN, _F.CLOSE_FRAMES),
)

INTERNALS: tuple[Internal, ...] = tuple(
    Internal(package, owner, name, features, kind)
    for package, owner, name, kind, features in (
        # daphne first: importing daphne.server installs Twisted's asyncio reactor
        ("daphne", "daphne.cli:CommandLineInterface", "server_class", _ATTR, (_F.SERVER,)),
        ("daphne", _SERVER, "create_application", _ATTR, _LEAN),
        ("daphne", _SERVER, "handle_reply", _ATTR, _LEAN),
        ("daphne", _SERVER, "application", _SELF, _LEAN),
        ("daphne", _SERVER, "ws_factory", _SELF, _LEAN),
        ("daphne", _SERVER, "connections", _SELF, _LEAN_DRAIN),
        ("daphne", _SERVER, '"application_instance"', _CODE, _LEAN_DRAIN),
        ("daphne", _SERVER, _DAPHNE_SEND, _CODE, (_F.LEAN, _F.CLOSE_FRAMES, _F.DIRECT_WRITE)),
        ("daphne", _SERVER, "listen_success", _ATTR, _DRAIN),
        ("daphne", _SERVER, "kill_all_applications", _ATTR, _DRAIN),
        ("daphne", "daphne.ws_protocol:WebSocketFactory", "protocol", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "CONFIG_ATTRS", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "failByDrop", _OPTION, _LEAN),
        ("autobahn", _PROTOCOL, "_connectionMade", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "_max_message_size_exceeded", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "_fail_connection", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "failedByMe", _SELF, _LEAN),
        ("autobahn", _PROTOCOL, "_isMessageCompressed", _SELF, _LEAN),
        ("autobahn", _PROTOCOL, "STATE_CLOSED", _ATTR, _LEAN),
        ("autobahn", _PROTOCOL, "websocket_protocol_in_use", _SELF, _LEAN_DRAIN),
        ("autobahn", _PROTOCOL, "sendCloseFrame", _ATTR, _CLOSING),
        ("autobahn", _PROTOCOL, "STATE_OPEN", _ATTR, (*_CLOSING, _F.DIRECT_WRITE)),
        ("autobahn", _PROTOCOL, "state", _SELF, (*_CLOSING, _F.DIRECT_WRITE)),
        ("autobahn", _PROTOCOL, "perMessageCompressionAccept", _OPTION, _DEFLATE_),
        ("autobahn", _PROTOCOL, "_perMessageCompress", _SELF, _DEFLATE_),
        ("autobahn", _PROTOCOL, "sendData", _ATTR, _DEFLATE_),
        ("autobahn", _DEFLATE, "_decompressor", _SELF, _DEFLATE_),
        ("Twisted", _FD, "_tempDataLen", _SELF, _WRITE),
        ("Twisted", _FD, "dataBuffer", _ATTR, _WRITE),
        ("Twisted", _FD, "offset", _ATTR, _WRITE),
        ("Twisted", _FD, "disconnecting", _ATTR, _WRITE),
        ("Twisted", _FD, "connected", _ATTR, _WRITE),
        ("Twisted", _TCP, "socket", _SELF, _WRITE),
        ("channels", "channels.consumer", "get_handler_name", _ATTR, (_F.CONSUMER,)),
        ("channels", "channels.consumer:AsyncConsumer", "base_send", _SELF, (_F.CONSUMER,)),
        # subclassed by jobupdates.delivery.layers, which cannot be imported without them
        ("channels-redis", _PUBSUB, "RedisPubSubLoopLayer", _ATTR, _LAYER_),
        ("channels-redis", _PUBSUB, "RedisSingleShardConnection", _ATTR, _LAYER_),
        ("channels-redis", _UTILS, "_wrap_close", _ATTR, _LAYER_),
        ("channels-redis", _UTILS, "decode_hosts", _ATTR, _LAYER_),
        ("channels-redis", _LAYER, "_get_layer", _ATTR, _LAYER_),
        ("channels-redis", _LAYER, "_layers", _SELF, _LAYER_),
        ("channels-redis", _LAYER, "_args", _SELF, _LAYER_),
        ("channels-redis", _LAYER, "_kwargs", _SELF, _LAYER_),
        ("channels-redis", _LOOP, "_get_shard", _ATTR, _LAYER_),
        ("channels-redis", _LOOP, "_get_group_channel_name", _ATTR, _LAYER_),
        ("channels-redis", _LOOP, "_shards", _SELF, _LAYER_),
        ("channels-redis", _LOOP, "channels", _SELF, _LAYER_),
        ("channels-redis", _LOOP, "groups", _SELF, _LAYER_),
        ("channels-redis", _LOOP, "prefix", _SELF, _LAYER_),
        ("channels-redis", _LOOP, "channel_layer", _SELF, _LAYER_),
        ("channels-redis", _SHARD, "_ensure_redis", _ATTR, _LAYER_),
        ("channels-redis", _SHARD, "_ensure_receiver", _ATTR, _LAYER_),
        ("channels-redis", _SHARD, "_do_receiving", _ATTR, _LAYER_),
        ("channels-redis", _SHARD, "_subscribed_to", _SELF, _LAYER_),
        ("channels-redis", _SHARD, "_lock", _SELF, _LAYER_),
        ("channels-redis", _SHARD, "_redis", _SELF, _LAYER_),
        ("channels-redis", _SHARD, "_pubsub", _SELF, _LAYER_),
    )
)


@dataclass(frozen=True)
class Missing:
    """A name :func:`probe` did not find, the version of its package installed and, if
    the name's owner itself could not be found, why (the same for each of its names)."""

    internal: Internal
    version: str | None
    owner_problem: str | None = None

    def __str__(self) -> str:
        found = f"{self.internal.package} {self.version or '(not installed)'}"
        return f"{found}: {self.owner_problem or self.internal}"


@dataclass(frozen=True)
class Report:
    """What :func:`probe` found: each package's installed version, and the missing names."""

    versions: dict[str, str | None]
    missing: tuple[Missing, ...]

    @functools.cached_property
    def unavailable(self) -> dict[Feature, tuple[Missing, ...]]:
        """Each feature that lacks a name, with what it lacks."""
        return {
            feature: lacking
            for feature in Feature
            if (lacking := tuple(m for m in self.missing if feature in m.internal.features))
        }

    def available(self, feature: Feature) -> bool:
        return feature not in self.unavailable

    def refusal(self) -> str | None:
        """Why the project's server cannot start, or None if it can."""
        fatal = [f for f in self.unavailable if f.fallback is None]
        if not fatal:
            return None
        names = sorted({str(m) for f in fatal for m in self.unavailable[f]})
        packages = sorted({m.internal.package for f in fatal for m in self.unavailable[f]})
        return (
            f"{', '.join(f.label for f in fatal)} cannot run without {'; '.join(names)} "
            "(no fallback); install the versions the project is tested on: pip install "
            + " ".join(f"'{p}{TESTED[p].specifier}'" for p in packages)
        )

    def fallbacks(self) -> list[str]:
        """One line per feature that falls back: what it lacks, what runs instead."""
        return [
            f"{feature.label} unavailable: missing {'; '.join(dict.fromkeys(map(str, lacking)))}; "
            f"{feature.fallback}"
            for feature, lacking in self.unavailable.items()
            if feature.fallback is not None
        ]

    def untested(self) -> list[str]:
        """One line per installed package whose version is outside :data:`TESTED`."""
        return [
            f"{package} {version} is outside the versions the project is tested on "
            f"({package}{TESTED[package].specifier})"
            for package, version in self.versions.items()
            if version is not None and not TESTED[package].contains(version)
        ]


def probe() -> Report:
    """Look up every name of :data:`INTERNALS`; return what is installed and what is missing."""
    versions = {package: _version(package) for package in TESTED}
    missing = []
    for internal in INTERNALS:
        owner, problem = _owner(internal.owner)
        if problem is not None or not _present(internal, owner):
            missing.append(Missing(internal, versions[internal.package], problem))
    return Report(versions, tuple(missing))


@functools.cache
def probed() -> Report:
    """This process's probe, made once: the first call probes (``probed.cache_clear()``
    to probe again)."""
    return probe()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _present(internal: Internal, owner: Any) -> bool:
    if internal.kind is Kind.ATTRIBUTE:
        return hasattr(owner, internal.name)
    if internal.kind is Kind.OPTION:
        options = getattr(owner, "CONFIG_ATTRS", None)
        return (
            isinstance(options, list | tuple)
            and all(isinstance(name, str) for name in options)
            and internal.name in options
        )
    if internal.kind is Kind.SOURCE:
        return internal.name in _source(owner)
    assigned = re.compile(rf"\bself\.{re.escape(internal.name)}\s*(?::[^=\n]+)?=(?!=)")
    return any(assigned.search(_source(klass)) for klass in inspect.getmro(owner))


def _owner(path: str) -> tuple[Any, str | None]:
    """The module or class ``path`` names, or None and why it is not there."""
    module, _, qualname = path.partition(":")
    try:
        owner: Any = importlib.import_module(module)
    except Exception as exc:  # not installed, or broken
        return None, f"cannot import {module} ({type(exc).__name__}: {exc})"
    for part in filter(None, qualname.split(".")):
        owner = getattr(owner, part, None)
        if owner is None:
            return None, f"no {path.replace(':', '.')}"
    return owner, None


@functools.cache
def _source(owner: Any) -> str:
    """The source of ``owner``'s functions (a class's methods; a module's whole file),
    cut from the file by their code objects' line numbers: ``inspect.getsource`` of a
    class parses its whole module, which made the probe cost a second per process start."""
    if inspect.ismodule(owner):
        path = getattr(owner, "__file__", None)
        return "".join(linecache.getlines(path)) if path else ""
    parts = []
    for value in vars(owner).values() if inspect.isclass(owner) else ():
        for function in _functions(value):
            code = function.__code__
            lines = linecache.getlines(code.co_filename)
            parts.append("".join(lines[code.co_firstlineno - 1 : _last_line(code)]))
    return "".join(parts)


def _functions(value: Any) -> list[Any]:
    """The plain functions behind a class attribute (a method, a static or class
    method, a property's accessors)."""
    if isinstance(value, staticmethod | classmethod):
        value = value.__func__
    if isinstance(value, property):
        return [f for f in (value.fget, value.fset, value.fdel) if inspect.isfunction(f)]
    return [value] if inspect.isfunction(value) else []


def _last_line(code: CodeType) -> int:
    """The last line of ``code``, nested functions included."""
    lines = [line for _, _, line in code.co_lines() if line is not None]
    nested = [_last_line(c) for c in code.co_consts if isinstance(c, CodeType)]
    return max([code.co_firstlineno, *lines, *nested])
