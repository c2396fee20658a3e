"""System checks for the app's configuration (ids ``jobupdates.E0xx``/``W0xx``).

| id | problem |
| --- | --- |
| E001 | the in-memory channel layer while ``DEBUG`` is off |
| E002 | the Redis URL is missing or malformed |
| E003 | a ``JOBUPDATES_*`` setting has an invalid value |
| E004 | ``CHANNEL_LAYERS`` has no ``default`` layer, or its backend cannot be imported |
| W001 | a Redis channel layer host without an explicit ``socket_timeout`` |
| W002 | ``ALLOWED_HOSTS`` has ``*`` and ``JOBUPDATES_ALLOWED_ORIGINS`` is empty |
| W003 | a channel layer without the fast path: every update takes the consumer's slower path |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from jobupdates.access.middleware import WILDCARD_HOST, origin_hosts
from jobupdates.conf import PREFIX, SETTING_NAMES, conf, redis_url_problem
from jobupdates.delivery.layers import JobUpdatesChannelLayer

__all__ = [
    "check_channel_layer",
    "check_internals",
    "check_monitoring",
    "check_origins",
    "check_revocation",
    "check_settings",
]

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
FAST_LAYER = "jobupdates.delivery.layers.JobUpdatesChannelLayer"


def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report every ``JOBUPDATES_*`` setting whose value is invalid."""
    errors: list[CheckMessage] = []
    for name in SETTING_NAMES:
        try:
            getattr(conf, name)
        except ImproperlyConfigured as exc:
            check_id = "jobupdates.E002" if name == "REDIS_URL" else "jobupdates.E003"
            errors.append(
                Error(
                    str(exc),
                    hint=f"Fix {PREFIX}{name} in settings or the environment.",
                    id=check_id,
                )
            )
    return errors


def check_channel_layer(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report a channel layer that cannot carry updates between processes, or lacks the fast path.

    The in-memory layer (allowed with ``DEBUG`` on, for tests) gets no W003: it
    is E001 as soon as it matters.
    """
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    layer = layers.get("default")
    if not isinstance(layer, dict) or "BACKEND" not in layer:
        return [
            Error(
                f"CHANNEL_LAYERS has no 'default' layer with a BACKEND; got {layer!r}.",
                hint=f"Configure {FAST_LAYER}.",
                id="jobupdates.E004",
            )
        ]
    try:
        backend = import_string(layer["BACKEND"])
    except ImportError as exc:
        return [
            Error(
                f"CHANNEL_LAYERS['default']: expected an importable BACKEND, got "
                f"{layer['BACKEND']!r} ({exc}).",
                hint=f"Configure {FAST_LAYER}.",
                id="jobupdates.E004",
            )
        ]
    messages: list[CheckMessage] = []
    if layer["BACKEND"] == IN_MEMORY_LAYER and not settings.DEBUG:
        messages.append(
            Error(
                "The in-memory channel layer only reaches consumers of one process, "
                "so the bridge's updates never arrive; got it with DEBUG off.",
                hint=f"Use {FAST_LAYER}.",
                id="jobupdates.E001",
            )
        )
    elif layer["BACKEND"] != IN_MEMORY_LAYER and not (
        isinstance(backend, type) and issubclass(backend, JobUpdatesChannelLayer)
    ):
        messages.append(
            Warning(
                f"The channel layer {layer['BACKEND']} has no fast path: every update "
                "takes the consumer's ordinary path (a queue, a dispatch and an encoded "
                "send per client) instead of one frame written to every local socket.",
                hint=f"Use {FAST_LAYER}, configured the same way, or silence "
                "jobupdates.W003 if this layer is deliberate.",
                id="jobupdates.W003",
            )
        )
    hosts = layer.get("CONFIG", {}).get("hosts", [])
    if layer["BACKEND"].startswith("channels_redis.") and not hosts:
        messages.append(
            Error("The Redis channel layer has no CONFIG['hosts'].", id="jobupdates.E002")
        )
    for host in hosts:
        if isinstance(host, dict) and "address" in host:
            problem = redis_url_problem(host["address"])
            if problem:
                messages.append(Error(f"CHANNEL_LAYERS host: {problem}", id="jobupdates.E002"))
        if not (isinstance(host, dict) and host.get("socket_timeout")):
            messages.append(
                Warning(
                    f"Channel layer host {host!r} has no explicit socket_timeout; redis-py 8 "
                    "defaults to 5 s, which kills channels_redis's blocking receive.",
                    hint='Use {"address": REDIS_URL, "socket_timeout": 30}.',
                    id="jobupdates.W001",
                )
            )
    return messages


def check_origins(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn when ``ALLOWED_HOSTS`` has ``*`` but no origins are listed.

    The origin check ignores that wildcard (it would let any site's pages use
    a logged-in user's cookie), so browsers are accepted only from the other
    hosts: likely not what was meant.
    """
    try:
        origins = conf.ALLOWED_ORIGINS
    except ImproperlyConfigured:
        return []  # reported by check_settings
    hosts = list(getattr(settings, "ALLOWED_HOSTS", []))
    if origins or WILDCARD_HOST not in hosts:
        return []
    left = origin_hosts(hosts, debug=settings.DEBUG)
    return [
        Warning(
            f"ALLOWED_HOSTS has {WILDCARD_HOST!r} and {PREFIX}ALLOWED_ORIGINS is empty: "
            "WebSocket pages from other sites are refused (origin_not_allowed), so "
            f"browsers connect only from {', '.join(left) or 'no host'}.",
            hint=f"List your pages' origins in {PREFIX}ALLOWED_ORIGINS "
            "(e.g. https://app.example.com), or set it to * if every client uses a token.",
            id="jobupdates.W002",
        )
    ]


MIN_TOKEN_LENGTH = 32
"""Shortest monitoring or metrics token accepted: guessing must be hopeless."""


def check_monitoring(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report monitoring and registry settings that are unsafe or unusable.

    | id | problem |
    | --- | --- |
    | E010 | ``PROMETHEUS_MULTIPROC_DIR`` is set but is not a writable directory |
    | E011 | ``JOBUPDATES_MONITORING_TOKEN`` or ``JOBUPDATES_METRICS_TOKEN`` is too short |
    | E012 | ``JOBUPDATES_REGISTRY_SOCKET_TIMEOUT`` is not shorter than two refresh intervals |
    """
    messages: list[CheckMessage] = []
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc is not None and not (os.path.isdir(multiproc) and os.access(multiproc, os.W_OK)):
        messages.append(
            Error(
                f"PROMETHEUS_MULTIPROC_DIR: expected a writable directory, got {multiproc!r}.",
                hint="Create one empty directory per host, shared by its server processes.",
                id="jobupdates.E010",
            )
        )
    for name in ("MONITORING_TOKEN", "METRICS_TOKEN"):
        try:
            token = getattr(conf, name)
        except ImproperlyConfigured:
            continue  # reported by check_settings
        if token and len(token) < MIN_TOKEN_LENGTH:
            messages.append(
                Error(
                    f"{PREFIX}{name}: expected at least {MIN_TOKEN_LENGTH} characters, "
                    f"got {len(token)}.",
                    hint="Generate one: python -c 'import secrets; print(secrets.token_hex())'",
                    id="jobupdates.E011",
                )
            )
    try:
        timeout, interval = conf.REGISTRY_SOCKET_TIMEOUT, conf.REGISTRY_INTERVAL
    except ImproperlyConfigured:
        return messages  # reported by check_settings
    if timeout >= 2 * interval:
        messages.append(
            Error(
                f"{PREFIX}REGISTRY_SOCKET_TIMEOUT ({timeout}) must be shorter than two "
                f"{PREFIX}REGISTRY_INTERVAL ({interval}): a slow refresh would let the "
                "instance's clients expire while it is alive.",
                id="jobupdates.E012",
            )
        )
    return messages


def check_revocation(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report a revocation turned off.

    | id | problem |
    | --- | --- |
    | W020 | ``JOBUPDATES_REAUTH_SECONDS`` is 0: no sweep catches what no signal announces |
    """
    try:
        seconds = conf.REAUTH_SECONDS
    except ImproperlyConfigured:
        return []  # reported by check_settings
    if seconds > 0:
        return []
    return [
        Warning(
            f"{PREFIX}REAUTH_SECONDS is 0: open connections are judged again only when a "
            "signal or jobupdates.revoke()/reauthorize() says so; a QuerySet.update, raw SQL, "
            "another service's write or an expired session leaves them open.",
            hint="Set it to the longest a connection may outlive its authority (default 5), "
            'or silence it: SILENCED_SYSTEM_CHECKS = ["jobupdates.W020"].',
            id="jobupdates.W020",
        )
    ]


def check_internals(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report what the project relies on of other packages' private names
    (:mod:`jobupdates.delivery.internals`): missing, or from an untested version.

    | id | problem |
    | --- | --- |
    | E030 | a name a feature without a fallback needs is missing: the server refuses to start |
    | W030 | a name is missing: its feature falls back (the message says to what) |
    | W031 | an installed version is outside the tested range (its names are there, or E030/W030) |
    """
    from jobupdates.delivery import internals

    found = internals.probe()
    messages: list[CheckMessage] = []
    refusal = found.refusal()
    if refusal is not None:
        messages.append(
            Error(
                f"{refusal}.",
                hint="python -m botrix_site.serve and python -m "
                "jobupdates.delivery.drain_server refuse to start until it is there.",
                id="jobupdates.E030",
            )
        )
    for fallback in found.fallbacks():
        messages.append(
            Warning(
                f"{fallback}.",
                hint="Install the versions in pyproject.toml's ranges, or silence "
                "jobupdates.W030 if running without this feature is deliberate.",
                id="jobupdates.W030",
            )
        )
    for untested in found.untested():
        messages.append(
            Warning(
                f"{untested}: the private names the project relies on may behave "
                "differently there.",
                hint="Install a tested version, or run the project's tests on this one "
                'first, then SILENCED_SYSTEM_CHECKS = ["jobupdates.W031"].',
                id="jobupdates.W031",
            )
        )
    return messages
