"""The app's settings, read in one place.

Each setting is a typed property of :class:`Settings` with a documented
default. A value is looked up, in order:

1. in Django's settings, as ``JOBUPDATES_<NAME>``;
2. in the environment, as ``JOBUPDATES_<NAME>`` (text, parsed by type:
   booleans take ``1/0``, ``true/false``, ``yes/no``, ``on/off``; lists are
   comma-separated);
3. else the default.

An invalid value raises :class:`~django.core.exceptions.ImproperlyConfigured`
naming the setting, what was expected and what came instead; the system
checks in :mod:`jobupdates.checks` report the same errors at start-up.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from jobupdates.protocol import DEFAULT_STATUSES

__all__ = ["PREFIX", "SETTING_NAMES", "Settings", "conf", "redis_url_problem"]

PREFIX = "JOBUPDATES_"
GROUP_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.]{1,99}$")
"""Channel-layer group names: these characters, and under 100 of them."""
REDIS_SCHEMES = ("redis", "rediss", "unix")

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def redis_url_problem(url: object) -> str | None:
    """Return what is wrong with a Redis URL, or ``None`` if it looks usable."""
    if not isinstance(url, str) or not url.strip():
        return f"expected a redis:// URL, got {url!r}"
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        return f"expected a URL with scheme {', '.join(REDIS_SCHEMES)}, got {url!r}"
    if parts.scheme != "unix" and not parts.hostname:
        return f"expected a host in the Redis URL, got {url!r}"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"expected a numeric port in the Redis URL, got {url!r}"
    return None


def _text(name: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ImproperlyConfigured(f"{name}: expected non-empty text, got {raw!r}")
    return raw


def _bool(name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false, 1/0), got {raw!r}")


def _number(name: str, raw: object, kind: type[T], minimum: float) -> T:
    value: object = raw
    if isinstance(raw, str):
        try:
            value = kind(raw.strip())  # type: ignore[call-arg]
        except ValueError:
            value = raw
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or (kind is int and not isinstance(value, int)):
        raise ImproperlyConfigured(f"{name}: expected {kind.__name__}, got {raw!r}")
    if value < minimum:  # type: ignore[operator]
        raise ImproperlyConfigured(f"{name}: expected a value >= {minimum}, got {raw!r}")
    return kind(value)  # type: ignore[call-arg]


def _int(minimum: int) -> Callable[[str, object], int]:
    return lambda name, raw: _number(name, raw, int, minimum)


def _float(minimum: float) -> Callable[[str, object], float]:
    return lambda name, raw: _number(name, raw, float, minimum)


def _names(name: str, raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ImproperlyConfigured(f"{name}: expected a list of strings, got {raw!r}")
    names = tuple(i.strip() for i in items if i.strip())
    if not names:
        raise ImproperlyConfigured(f"{name}: expected at least one entry, got {raw!r}")
    return names


def _secret(name: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise ImproperlyConfigured(f"{name}: expected text (empty turns it off), got {raw!r}")
    return raw.strip()


def _proxies(name: str, raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ImproperlyConfigured(f"{name}: expected a list of IPs or CIDR networks, got {raw!r}")
    entries = tuple(i.strip() for i in items if i.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: expected an IP address or CIDR network, got {entry!r}"
            ) from None
    return entries


def _maybe_names(name: str, raw: object) -> tuple[str, ...]:
    if raw in ("", [], ()):
        return ()
    return _names(name, raw)


class Settings:
    """Typed access to every ``JOBUPDATES_*`` setting (see the module docstring)."""

    def _get(self, name: str, default: T, parse: Callable[[str, object], T]) -> T:
        key = PREFIX + name
        raw = getattr(django_settings, key, None)
        if raw is None:
            raw = os.environ.get(key)
        if raw is None:
            return default
        return parse(key, raw)

    @property
    def REDIS_URL(self) -> str:
        """Redis the bridge subscribes to. Default: the project's ``REDIS_URL``
        setting, else ``redis://127.0.0.1:6379/0``."""
        default = getattr(django_settings, "REDIS_URL", None) or "redis://127.0.0.1:6379/0"
        url = self._get("REDIS_URL", default, _text)
        problem = redis_url_problem(url)
        if problem:
            raise ImproperlyConfigured(f"{PREFIX}REDIS_URL: {problem}")
        return url

    @property
    def CHANNEL(self) -> str:
        """Redis pub/sub channel the workers publish on. Default: ``botrix:jobs:updates``."""
        return self._get("CHANNEL", "botrix:jobs:updates", _text)

    @property
    def GROUP(self) -> str:
        """Channel-layer group of the all-jobs feed. Default: ``jobupdates.all``."""
        group = self._get("GROUP", "jobupdates.all", _text)
        if not GROUP_NAME_RE.match(group):
            raise ImproperlyConfigured(
                f"{PREFIX}GROUP: expected 1-99 characters of [a-zA-Z0-9-_.], got {group!r}"
            )
        return group

    @property
    def STATUSES(self) -> tuple[str, ...]:
        """Job statuses the bridge accepts. Default: pending, queued, processing,
        completed, failed, cancelled."""
        return self._get("STATUSES", DEFAULT_STATUSES, _names)

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        """Largest Redis message the bridge accepts, in bytes. Default: 1 MiB."""
        return self._get("MAX_PAYLOAD_BYTES", 1024 * 1024, _int(1))

    @property
    def REQUIRE_AUTH(self) -> bool:
        """Refuse anonymous WebSocket clients (close code 4401). Default: ``True``."""
        return self._get("REQUIRE_AUTH", True, _bool)

    @property
    def REDIS_SOCKET_TIMEOUT(self) -> float:
        """Seconds the bridge waits on one Redis command before it reconnects.
        Set explicitly because redis-py 8 defaults to 5 s. Default: ``30``."""
        return self._get("REDIS_SOCKET_TIMEOUT", 30.0, _float(0.1))

    @property
    def REDIS_HEALTH_CHECK_INTERVAL(self) -> float:
        """Seconds of silence after which the bridge PINGs Redis to detect a dead
        connection. Default: ``10``."""
        return self._get("REDIS_HEALTH_CHECK_INTERVAL", 10.0, _float(1))

    @property
    def RECONNECT_INITIAL(self) -> float:
        """Ceiling, in seconds, of the bridge's first reconnect delay. Default: ``0.5``."""
        return self._get("RECONNECT_INITIAL", 0.5, _float(0.01))

    @property
    def RECONNECT_MAX(self) -> float:
        """Largest reconnect delay ceiling, in seconds. Default: ``10``."""
        maximum = self._get("RECONNECT_MAX", 10.0, _float(0.01))
        if maximum < self.RECONNECT_INITIAL:
            raise ImproperlyConfigured(
                f"{PREFIX}RECONNECT_MAX: expected a value >= {PREFIX}RECONNECT_INITIAL "
                f"({self.RECONNECT_INITIAL}), got {maximum}"
            )
        return maximum

    @property
    def HISTORY_KEY(self) -> str:
        """Redis Stream holding the recent updates replayed on reconnect.
        Default: ``botrix:jobs:history``."""
        return self._get("HISTORY_KEY", "botrix:jobs:history", _text)

    @property
    def HISTORY_SIZE(self) -> int:
        """How many recent updates the history keeps (at least). Default: ``1000``."""
        return self._get("HISTORY_SIZE", 1000, _int(1))

    @property
    def HISTORY_MAX_AGE(self) -> float:
        """Seconds an update stays in the history (at least); ``0`` keeps it until
        the size limit trims it. Default: ``300``."""
        return self._get("HISTORY_MAX_AGE", 300.0, _float(0))

    @property
    def STATE_PREFIX(self) -> str:
        """Prefix of the Redis keys holding each job's latest state.
        Default: ``botrix:jobs:state:``."""
        return self._get("STATE_PREFIX", "botrix:jobs:state:", _text)

    @property
    def STATE_TTL(self) -> int:
        """Seconds a job's latest state is kept after its last update. Default: ``86400``."""
        return self._get("STATE_TTL", 86400, _int(1))

    @property
    def BRIDGE_LEASE_KEY(self) -> str:
        """Redis key of the lease held by the active bridge.
        Default: ``botrix:jobs:bridge:active``."""
        return self._get("BRIDGE_LEASE_KEY", "botrix:jobs:bridge:active", _text)

    @property
    def BRIDGE_LEASE_TTL(self) -> float:
        """Seconds after which a standby bridge takes over from an active one that
        stopped renewing its lease (renewed every third of it). Default: ``5``."""
        return self._get("BRIDGE_LEASE_TTL", 5.0, _float(0.3))

    @property
    def REGISTRY_INTERVAL(self) -> float:
        """Seconds between a server process's batched refreshes of its clients in the
        registry. The clients of a process that died disappear within two intervals.
        Default: ``10``."""
        return self._get("REGISTRY_INTERVAL", 10.0, _float(0.1))

    @property
    def REGISTRY_SOCKET_TIMEOUT(self) -> float:
        """Seconds one registry Redis call may take (connect, disconnect, refresh,
        reads of ``/ws/stats`` and the admin). Default: ``5``."""
        return self._get("REGISTRY_SOCKET_TIMEOUT", 5.0, _float(0.1))

    @property
    def TRUSTED_PROXIES(self) -> tuple[str, ...]:
        """IP addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For``
        is believed for a client's address (comma-separated in the environment).
        Default: none, so the header is ignored and the TCP peer is the address."""
        return self._get("TRUSTED_PROXIES", (), _proxies)

    @property
    def MONITORING_TOKEN(self) -> str:
        """Bearer token that may read ``/ws/stats`` without a staff session
        (``Authorization: Bearer <token>``). Default: empty, token access off."""
        return self._get("MONITORING_TOKEN", "", _secret)

    @property
    def METRICS_TOKEN(self) -> str:
        """Bearer token that may read ``/metrics`` without a staff session.
        Default: empty, so only staff sessions can read it."""
        return self._get("METRICS_TOKEN", "", _secret)

    @property
    def ALLOWED_ORIGINS(self) -> tuple[str, ...]:
        """Origins (``scheme://host[:port]``) whose pages may connect; ``*`` allows any
        (explicitly turning the check off). Empty: hosts in ``ALLOWED_HOSTS``. Default: empty."""
        return self._get("ALLOWED_ORIGINS", (), _maybe_names)

    @property
    def TOKEN_TTL(self) -> float:
        """Seconds a WebSocket token stays valid; each is accepted once. Default: ``60``."""
        return self._get("TOKEN_TTL", 60.0, _float(1))

    @property
    def TOKEN_USED_PREFIX(self) -> str:
        """Prefix of the Redis keys that mark tokens as used.
        Default: ``botrix:jobs:token-used:``."""
        return self._get("TOKEN_USED_PREFIX", "botrix:jobs:token-used:", _text)


SETTING_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(Settings).items() if isinstance(value, property)
)
"""Every setting, without the ``JOBUPDATES_`` prefix."""

conf = Settings()
