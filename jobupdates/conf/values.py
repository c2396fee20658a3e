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

from django.core.exceptions import ImproperlyConfigured

GROUP_NAME_RE = re.compile(r"^[a-zA-Z0-9\-_.]{1,99}$")
"""Channel-layer group names: these characters, and under 100 of them."""
T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
