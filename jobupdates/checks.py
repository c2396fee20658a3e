"""System checks for the app's configuration (ids ``jobupdates.E0xx``/``W0xx``).

| id | problem |
| --- | --- |
| E001 | the in-memory channel layer while ``DEBUG`` is off |
| E002 | the Redis URL is missing or malformed |
| E003 | a ``JOBUPDATES_*`` setting has an invalid value |
| E004 | ``CHANNEL_LAYERS`` has no ``default`` layer |
| W001 | a Redis channel layer host without an explicit ``socket_timeout`` |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.core.exceptions import ImproperlyConfigured

from jobupdates.conf import PREFIX, SETTING_NAMES, conf, redis_url_problem

__all__ = ["check_channel_layer", "check_settings"]

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


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
    """Report a channel layer that cannot carry updates between processes."""
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    layer = layers.get("default")
    if not isinstance(layer, dict) or "BACKEND" not in layer:
        return [
            Error(
                f"CHANNEL_LAYERS has no 'default' layer with a BACKEND; got {layer!r}.",
                hint="Configure channels_redis.pubsub.RedisPubSubChannelLayer.",
                id="jobupdates.E004",
            )
        ]
    messages: list[CheckMessage] = []
    if layer["BACKEND"] == IN_MEMORY_LAYER and not settings.DEBUG:
        messages.append(
            Error(
                "The in-memory channel layer only reaches consumers of one process, "
                "so the bridge's updates never arrive; got it with DEBUG off.",
                hint="Use channels_redis.pubsub.RedisPubSubChannelLayer.",
                id="jobupdates.E001",
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
