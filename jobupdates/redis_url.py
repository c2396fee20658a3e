"""Redis URLs, including Sentinel's: parsed once, the same way for every client.

Two forms:

* ``redis://``, ``rediss://`` (TLS), ``unix://``: one Redis, as redis-py
  reads them.
* ``redis+sentinel://[user:password@]host:port[,host:port...]/<service>[/<db>]``
  and ``rediss+sentinel://`` (TLS to the sentinels and to the primary): the
  primary that the sentinels name for ``<service>``, followed through a
  failover. ``user:password`` are the primary's. The sentinels' own, if they
  have any, go in the query: ``?sentinel_username=...&sentinel_password=...``.
  A host without a port is on 26379.

Pure functions: :mod:`jobupdates.redis_client` builds the clients,
``botrix_site.settings`` the channel layer's host (:func:`layer_host`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DIRECT_SCHEMES",
    "SENTINEL_PORT",
    "SENTINEL_SCHEMES",
    "RedisUrlError",
    "SentinelTarget",
    "is_sentinel",
    "layer_host",
    "parse_sentinel",
    "redact_url",
    "redis_url_problem",
]

DIRECT_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
_QUERY = frozenset({"sentinel_username", "sentinel_password"})


class RedisUrlError(ValueError):
    """A Redis URL that cannot be used; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def sentinel_options(self) -> dict[str, Any]:
        """Connection options for the sentinels themselves (credentials, TLS)."""
        options: dict[str, Any] = {}
        if self.sentinel_username is not None:
            options["username"] = self.sentinel_username
        if self.sentinel_password is not None:
            options["password"] = self.sentinel_password
        if self.tls:
            options["ssl"] = True
        return options

    def primary_options(self) -> dict[str, Any]:
        """Connection options for the primary (database, credentials, TLS)."""
        options: dict[str, Any] = {"db": self.db}
        if self.username is not None:
            options["username"] = self.username
        if self.password is not None:
            options["password"] = self.password
        if self.tls:
            options["ssl"] = True
        return options


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names a primary through sentinels."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def redact_url(url: str) -> str:
    """``url`` with its passwords (the primary's and the sentinels') replaced by ``***``,
    for messages and log lines."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    path, question, query = tail.partition("?")
    if "password=" in query:
        query = "&".join(
            f"{k}=***" if k.endswith("password") else f"{k}={v}"
            for k, _, v in (item.partition("=") for item in query.split("&"))
        )
    return f"{scheme}{sep}{userinfo}{at}{hosts}{slash}{path}{question}{query}"


def parse_sentinel(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` or ``rediss+sentinel://`` URL.

    Raises:
        RedisUrlError: Saying what was expected and what came (passwords hidden).
    """
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisUrlError(f"expected a redis+sentinel:// URL, got {shown!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    if not at:
        hostlist = netloc
    sentinels = tuple(_host_port(entry, shown) for entry in hostlist.split(","))
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise RedisUrlError(
            f"expected /<service name>[/<db>] after the sentinels' addresses, got {shown!r}"
        )
    db = 0
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise RedisUrlError(f"expected a database number after the service, got {shown!r}")
        db = int(parts[1])
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - _QUERY)
    if unknown:
        raise RedisUrlError(
            f"expected only {', '.join(sorted(_QUERY))} in the query, got {', '.join(unknown)} "
            f"in {shown!r}"
        )
    username, _, password = userinfo.partition(":") if at else ("", "", "")
    return SentinelTarget(
        sentinels=sentinels,
        service=parts[0],
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=options.get("sentinel_username", [None])[0] or None,
        sentinel_password=options.get("sentinel_password", [None])[0] or None,
        tls=scheme.lower() == "rediss+sentinel",
    )


def _host_port(entry: str, shown: str) -> tuple[str, int]:
    host, port = entry, ""
    if entry.startswith("["):  # [::1]:26379
        host, _, after = entry[1:].partition("]")
        port = after.removeprefix(":")
    elif ":" in entry:
        host, _, port = entry.rpartition(":")
    if not host:
        raise RedisUrlError(f"expected host:port for each sentinel, got {shown!r}")
    if not port:
        return host, SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisUrlError(f"expected a numeric port for sentinel {host!r}, got {shown!r}")
    return host, int(port)


def redis_url_problem(url: object) -> str | None:
    """Return what is wrong with a Redis URL of either form, or ``None`` if it looks usable."""
    schemes = ", ".join((*DIRECT_SCHEMES, *SENTINEL_SCHEMES))
    if not isinstance(url, str) or not url.strip():
        return f"expected a redis:// or redis+sentinel:// URL, got {url!r}"
    if is_sentinel(url):
        try:
            parse_sentinel(url)
        except RedisUrlError as exc:
            return str(exc)
        return None
    parts = urlsplit(url)
    if parts.scheme not in DIRECT_SCHEMES:
        return f"expected a URL with scheme {schemes}, got {redact_url(url)!r}"
    if parts.scheme != "unix" and not parts.hostname:
        return f"expected a host in the Redis URL, got {redact_url(url)!r}"
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"expected a numeric port in the Redis URL, got {redact_url(url)!r}"
    return None


def layer_host(url: str, **options: Any) -> dict[str, Any]:
    """A channels_redis ``hosts`` entry for ``url``, with connection ``options``
    (``socket_timeout`` and the like) for the Redis it talks to.

    A sentinel URL becomes channels_redis's ``sentinels``/``master_name`` form;
    one that does not parse stays an ``address``, which the system check
    ``jobupdates.E002`` reports (settings must import to be checked).
    """
    if not is_sentinel(url) or redis_url_problem(url) is not None:
        return {"address": url, **options}
    target = parse_sentinel(url)
    sentinel_kwargs = {**target.sentinel_options()}
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in options:
            sentinel_kwargs[name] = options[name]
    return {
        "sentinels": [list(address) for address in target.sentinels],
        "master_name": target.service,
        "sentinel_kwargs": sentinel_kwargs,
        **target.primary_options(),
        **options,
    }
