"""The app's settings, read in one place.

Each setting is a typed property of :class:`Settings` with a documented
default. A value is looked up, in order:

1. in Django's settings, as ``JOBUPDATES_<NAME>``;
2. in the environment, as ``JOBUPDATES_<NAME>`` (text, parsed by type:
   booleans take ``1/0``, ``true/false``, ``yes/no``, ``on/off``; lists are
   comma-separated);
3. else the default.

Each is read once per process, then kept (a handshake reads about 17 of
them): Django's ``setting_changed`` signal (``override_settings``, the
test ``settings`` fixture) makes it read them again; a change to the
environment at run time needs :meth:`Settings.reload`.

An invalid value raises :class:`~django.core.exceptions.ImproperlyConfigured`
naming the setting, what was expected and what came instead; the system
checks in :mod:`jobupdates.checks` report the same errors at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from jobupdates.conf import values as v
from jobupdates.conf.values import GROUP_NAME_RE
from jobupdates.protocol import DEFAULT_STATUSES
from jobupdates.redis_url import redis_url_problem

__all__ = ["PREFIX", "SETTING_NAMES", "Settings", "conf", "redis_url_problem"]

PREFIX = "JOBUPDATES_"
T = TypeVar("T")


class Settings:
    """Typed access to every ``JOBUPDATES_*`` setting (see the module docstring)."""

    def __init__(self) -> None:
        self._values: dict[str, object] = {}

    def _get(self, name: str, default: T, parse: Callable[[str, object], T]) -> T:
        try:
            return self._values[name]  # type: ignore[return-value]  # stored by this method
        except KeyError:
            pass
        key = PREFIX + name
        raw = getattr(django_settings, key, None)
        if raw is None:
            raw = os.environ.get(key)
        value = default if raw is None else parse(key, raw)
        self._values[name] = value
        return value

    def reload(self, **_: object) -> None:
        """Forget the values read so far; Django's ``setting_changed`` calls it."""
        self._values.clear()

    @property
    def REDIS_URL(self) -> str:
        """Redis the bridge subscribes to: a ``redis://`` URL, or a
        ``redis+sentinel://`` one (:mod:`jobupdates.redis_url`). Default: the
        project's ``REDIS_URL`` setting, else ``redis://127.0.0.1:6379/0``."""
        default = getattr(django_settings, "REDIS_URL", None) or "redis://127.0.0.1:6379/0"
        url = self._get("REDIS_URL", default, v.text)
        problem = redis_url_problem(url)
        if problem:
            raise ImproperlyConfigured(f"{PREFIX}REDIS_URL: {problem}")
        return url

    @property
    def CHANNEL(self) -> str:
        """Redis pub/sub channel the workers publish on. Default: ``botrix:jobs:updates``."""
        return self._get("CHANNEL", "botrix:jobs:updates", v.text)

    @property
    def GROUP(self) -> str:
        """Channel-layer group of the all-jobs feed. Default: ``jobupdates.all``."""
        group = self._get("GROUP", "jobupdates.all", v.text)
        if not GROUP_NAME_RE.match(group):
            raise ImproperlyConfigured(
                f"{PREFIX}GROUP: expected 1-99 characters of [a-zA-Z0-9-_.], got {group!r}"
            )
        return group

    @property
    def STATUSES(self) -> tuple[str, ...]:
        """Job statuses the bridge accepts. Default: pending, queued, processing,
        completed, failed, cancelled."""
        return self._get("STATUSES", DEFAULT_STATUSES, v.names)

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        """Largest Redis message the bridge accepts, in bytes. Default: 1 MiB."""
        return self._get("MAX_PAYLOAD_BYTES", 1024 * 1024, v.integer(1))

    @property
    def REQUIRE_AUTH(self) -> bool:
        """Refuse anonymous WebSocket clients (close code 4401). Default: ``True``."""
        return self._get("REQUIRE_AUTH", True, v.boolean)

    @property
    def REDIS_SOCKET_TIMEOUT(self) -> float:
        """Seconds one Redis command of the bridge, and of a server process's history
        reads and token checks, may take. Set explicitly because redis-py 8
        defaults to 5 s. Default: ``30``."""
        return self._get("REDIS_SOCKET_TIMEOUT", 30.0, v.real(0.1))

    @property
    def REDIS_HEALTH_CHECK_INTERVAL(self) -> float:
        """Seconds of silence after which the bridge PINGs Redis to detect a dead
        connection. Default: ``10``."""
        return self._get("REDIS_HEALTH_CHECK_INTERVAL", 10.0, v.real(1))

    @property
    def RECONNECT_INITIAL(self) -> float:
        """Ceiling, in seconds, of the bridge's first reconnect delay. Default: ``0.5``."""
        return self._get("RECONNECT_INITIAL", 0.5, v.real(0.01))

    @property
    def RECONNECT_MAX(self) -> float:
        """Largest reconnect delay ceiling, in seconds. Default: ``10``."""
        maximum = self._get("RECONNECT_MAX", 10.0, v.real(0.01))
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
        return self._get("HISTORY_KEY", "botrix:jobs:history", v.text)

    @property
    def HISTORY_SIZE(self) -> int:
        """How many recent updates the history keeps (at least). Default: ``1000``."""
        return self._get("HISTORY_SIZE", 1000, v.integer(1))

    @property
    def HISTORY_MAX_AGE(self) -> float:
        """Seconds an update stays in the history (at least); ``0`` keeps it until
        the size limit trims it. Default: ``300``."""
        return self._get("HISTORY_MAX_AGE", 300.0, v.real(0))

    @property
    def STATE_PREFIX(self) -> str:
        """Prefix of the Redis keys holding each job's latest state.
        Default: ``botrix:jobs:state:``."""
        return self._get("STATE_PREFIX", "botrix:jobs:state:", v.text)

    @property
    def STATE_TTL(self) -> int:
        """Seconds a job's latest state is kept after its last update. Default: ``86400``."""
        return self._get("STATE_TTL", 86400, v.integer(1))

    @property
    def BRIDGE_LEASE_KEY(self) -> str:
        """Redis key of the lease held by the active bridge.
        Default: ``botrix:jobs:bridge:active``."""
        return self._get("BRIDGE_LEASE_KEY", "botrix:jobs:bridge:active", v.text)

    @property
    def BRIDGE_LEASE_TTL(self) -> float:
        """Seconds after which a standby bridge takes over from an active one that
        stopped renewing its lease (renewed every third of it). Default: ``5``."""
        return self._get("BRIDGE_LEASE_TTL", 5.0, v.real(0.3))

    @property
    def REGISTRY(self) -> bool:
        """Register every connection in the cluster-wide client registry (``/ws/stats``,
        the admin list, admin disconnects). Default: ``True``."""
        return self._get("REGISTRY", True, v.boolean)

    @property
    def REGISTRY_INTERVAL(self) -> float:
        """Seconds between a server process's batched refreshes of its clients in the
        registry. The clients of a process that died disappear within two intervals.
        Default: ``10``."""
        return self._get("REGISTRY_INTERVAL", 10.0, v.real(0.1))

    @property
    def REGISTRY_SOCKET_TIMEOUT(self) -> float:
        """Seconds one registry Redis call may take (connect, disconnect, refresh,
        reads of ``/ws/stats`` and the admin). Default: ``5``."""
        return self._get("REGISTRY_SOCKET_TIMEOUT", 5.0, v.real(0.1))

    @property
    def TRUSTED_PROXIES(self) -> tuple[str, ...]:
        """IP addresses or CIDR networks of reverse proxies whose ``X-Forwarded-For``
        is believed for a client's address (comma-separated in the environment).
        Default: none, so the header is ignored and the TCP peer is the address."""
        return self._get("TRUSTED_PROXIES", (), v.networks)

    @property
    def MONITORING_TOKEN(self) -> str:
        """Bearer token that may read ``/ws/stats`` without a staff session
        (``Authorization: Bearer <token>``). Default: empty, token access off."""
        return self._get("MONITORING_TOKEN", "", v.secret)

    @property
    def METRICS_TOKEN(self) -> str:
        """Bearer token that may read ``/metrics`` without a staff session.
        Default: empty, so only staff sessions can read it."""
        return self._get("METRICS_TOKEN", "", v.secret)

    @property
    def ALLOWED_ORIGINS(self) -> tuple[str, ...]:
        """Origins (``scheme://host[:port]``) whose pages may connect; ``*`` allows any
        (explicitly turning the check off). Empty: hosts in ``ALLOWED_HOSTS``. Default: empty."""
        return self._get("ALLOWED_ORIGINS", (), v.optional_names)

    @property
    def TOKEN_TTL(self) -> float:
        """Seconds a WebSocket token stays valid; each is accepted once. Default: ``60``."""
        return self._get("TOKEN_TTL", 60.0, v.real(1))

    @property
    def TOKEN_USED_PREFIX(self) -> str:
        """Prefix of the Redis keys that mark tokens as used.
        Default: ``botrix:jobs:token-used:``."""
        return self._get("TOKEN_USED_PREFIX", "botrix:jobs:token-used:", v.text)

    @property
    def ALL_JOBS_PERMISSION(self) -> str:
        """Permission a user needs for the all-jobs feed; staff always have it. Empty
        lets every user who may connect receive all jobs (explicitly).
        Default: ``jobupdates.view_all_jobs``."""
        return self._get("ALL_JOBS_PERMISSION", "jobupdates.view_all_jobs", v.secret)

    @property
    def JOB_AUTHORIZER(self) -> str:
        """Dotted path of a callable ``(user, job_id) -> bool`` deciding per-job
        subscriptions. Default: ``jobupdates.access.permissions.can_view_job`` (users who
        may receive all jobs)."""
        return self._get("JOB_AUTHORIZER", "jobupdates.access.permissions.can_view_job", v.text)

    @property
    def MAX_CONNECTIONS_PER_PROCESS(self) -> int:
        """Connections one server process accepts; more get close code 4503.
        Default: ``10000``."""
        return self._get("MAX_CONNECTIONS_PER_PROCESS", 10_000, v.integer(1))

    @property
    def MAX_HANDSHAKES(self) -> int:
        """Handshakes one server process works on at once; the others wait their turn
        up to ``HANDSHAKE_WAIT`` seconds, then get ``server_busy`` and close 4503.
        Default: ``64``."""
        return self._get("MAX_HANDSHAKES", 64, v.integer(1))

    @property
    def HANDSHAKE_WAIT(self) -> float:
        """Seconds a handshake may wait for its turn; keep it under Daphne's
        ``--websocket_connect_timeout`` (10 with ``botrix_site.serve``; Daphne's own
        default is 5) less a handshake's own time. Default: ``6``."""
        return self._get("HANDSHAKE_WAIT", 6.0, v.real(0.0))

    @property
    def MAX_CONNECTIONS_PER_USER(self) -> int:
        """Connections one user may hold on one server process; more get close code 4429.
        Default: ``20``."""
        return self._get("MAX_CONNECTIONS_PER_USER", 20, v.integer(1))

    @property
    def MAX_FRAME_BYTES(self) -> int:
        """Largest client frame handled, in characters (bytes for MessagePack); larger ones
        get an error frame; a message over Daphne's 1 MiB (inflated, if compressed) gets
        ``frame_too_large`` and close 1009. Default: ``4096``."""
        return self._get("MAX_FRAME_BYTES", 4096, v.integer(64))

    @property
    def PERMESSAGE_DEFLATE(self) -> bool:
        """Negotiate permessage-deflate (RFC 7692) with clients that offer it, as browsers
        do: each update is compressed once per process, not per client. Needs the
        project's server (``jobupdates.delivery.drain_server``). Default: ``True``."""
        return self._get("PERMESSAGE_DEFLATE", True, v.boolean)

    @property
    def RATE_LIMIT(self) -> float:
        """Frames per second a connection may send, on average. Default: ``10``."""
        return self._get("RATE_LIMIT", 10.0, v.real(0.01))

    @property
    def RATE_BURST(self) -> int:
        """Frames a connection may send at once above the rate. Default: ``20``."""
        return self._get("RATE_BURST", 20, v.integer(1))

    @property
    def MAX_STRIKES(self) -> int:
        """Bad or rate-limited frames after which a connection is closed (4400 or 4429).
        Default: ``10``."""
        return self._get("MAX_STRIKES", 10, v.integer(1))

    @property
    def MAX_SUBSCRIPTIONS(self) -> int:
        """Jobs one connection may subscribe to. Default: ``100``."""
        return self._get("MAX_SUBSCRIPTIONS", 100, v.integer(1))

    @property
    def REAUTH_SECONDS(self) -> float:
        """The longest an open connection outlives its authority when no signal says
        so (``QuerySet.update``, raw SQL, another service, session expiry): every
        server process judges all its connections again every half of it. 0 turns
        that sweep off (system check jobupdates.W020); signals and ``jobupdates.revoke`` still
        act at once. Default: ``5``."""
        return self._get("REAUTH_SECONDS", 5.0, v.real(0.0))

    @property
    def MAX_BACKLOG_BYTES(self) -> int:
        """Bytes a client may leave unread before it is dropped as slow (4408); about
        256 updates of 4 KB. Default: ``1048576``."""
        return self._get("MAX_BACKLOG_BYTES", 1024 * 1024, v.integer(1024))

    @property
    def DRAIN_SECONDS(self) -> float:
        """Seconds a stopping server (SIGTERM, SIGINT) spreads its clients' closes
        over (``server_restarting``, close 1012), so they do not all reconnect at
        once; at most 60. Default: ``5``."""
        seconds = self._get("DRAIN_SECONDS", 5.0, v.real(0.0))
        if seconds > 60:
            raise ImproperlyConfigured(
                f"{PREFIX}DRAIN_SECONDS: expected at most 60 seconds, got {seconds:g}"
            )
        return seconds

    @property
    def INGEST_STREAM(self) -> str:
        """Redis Stream of the durable ingest: workers ``XADD`` updates to it
        (``payload`` field) and the active bridge reads it with the consumer group
        ``jobupdates.bridges``. Default: ``botrix:jobs:ingest``."""
        return self._get("INGEST_STREAM", "botrix:jobs:ingest", v.text)

    @property
    def INGEST_STREAM_SIZE(self) -> int:
        """How many entries the durable ingest stream keeps (at least; ``MAXLEN ~``,
        applied by the worker helper's ``XADD``). Default: ``100000``."""
        return self._get("INGEST_STREAM_SIZE", 100_000, v.integer(1))

    @property
    def STANDBY_BUFFER_SECONDS(self) -> float:
        """How long every bridge keeps each valid update it received in its ring, so that
        on a takeover it forwards what the old active bridge never recorded. Default: ``30``."""
        return self._get("STANDBY_BUFFER_SECONDS", 30.0, v.real(0.0))

    @property
    def STANDBY_BUFFER_MESSAGES(self) -> int:
        """How many updates that ring keeps at most (the newest). Default: ``10000``."""
        return self._get("STANDBY_BUFFER_MESSAGES", 10_000, v.integer(1))

    @property
    def DEAD_LETTER_KEY(self) -> str:
        """Redis list keeping the messages the bridge rejected, newest first.
        Default: ``botrix:jobs:dead-letters``."""
        return self._get("DEAD_LETTER_KEY", "botrix:jobs:dead-letters", v.text)

    @property
    def DEAD_LETTER_SIZE(self) -> int:
        """How many rejected messages the dead-letter list keeps (the newest), each
        with at most 1 KiB of its payload. Default: ``1000``."""
        return self._get("DEAD_LETTER_SIZE", 1000, v.integer(1))


SETTING_NAMES: tuple[str, ...] = tuple(
    name for name, value in vars(Settings).items() if isinstance(value, property)
)
"""Every setting, without the ``JOBUPDATES_`` prefix."""

conf = Settings()
setting_changed.connect(conf.reload, weak=False)
