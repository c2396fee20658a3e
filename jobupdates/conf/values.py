"""Parsers of setting values, for :mod:`jobupdates.conf`.

Each takes the setting's full name and its raw value (a Python value from
Django's settings, or text from the environment) and returns the typed
value, or raises :class:`~django.core.exceptions.ImproperlyConfigured`
saying what was expected and what came instead.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

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


def text(name: str, raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise ImproperlyConfigured(f"{name}: expected non-empty text, got {raw!r}")
    return raw


def boolean(name: str, raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false, 1/0), got {raw!r}")


def number(name: str, raw: object, kind: type[T], minimum: float) -> T:
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


def integer(minimum: int) -> Callable[[str, object], int]:
    return lambda name, raw: number(name, raw, int, minimum)


def real(minimum: float) -> Callable[[str, object], float]:
    return lambda name, raw: number(name, raw, float, minimum)


def names(name: str, raw: object) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
        raise ImproperlyConfigured(f"{name}: expected a list of strings, got {raw!r}")
    names = tuple(i.strip() for i in items if i.strip())
    if not names:
        raise ImproperlyConfigured(f"{name}: expected at least one entry, got {raw!r}")
    return names


def secret(name: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise ImproperlyConfigured(f"{name}: expected text (empty turns it off), got {raw!r}")
    return raw.strip()


def networks(name: str, raw: object) -> tuple[str, ...]:
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


def optional_names(name: str, raw: object) -> tuple[str, ...]:
    if raw in ("", [], ()):
        return ()
    return names(name, raw)
