"""``manage.py run_bridge``: forward job updates from Redis to WebSocket clients."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobupdates.backoff import backoff
from jobupdates.bridge import Bridge, run_until_signalled
from jobupdates.conf import conf


class Command(BaseCommand):
    help = (
        "Subscribe to the Redis channel of job updates and forward valid ones to WebSocket clients."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--channel", help=f"Redis channel to subscribe to (default: {conf.CHANNEL})."
        )
        parser.add_argument(
            "--redis-url", help="Redis to subscribe to (default: JOBUPDATES_REDIS_URL)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None:
            raise CommandError(
                "CHANNEL_LAYERS has no 'default' layer; the bridge has nowhere to send."
            )
        bridge = Bridge(
            redis_url=options["redis_url"] or conf.REDIS_URL,
            channel=options["channel"] or conf.CHANNEL,
            group=conf.GROUP,
            layer=layer,
            delays=functools.partial(backoff, conf.RECONNECT_INITIAL, conf.RECONNECT_MAX),
            statuses=conf.STATUSES,
            max_payload_bytes=conf.MAX_PAYLOAD_BYTES,
            socket_timeout=conf.REDIS_SOCKET_TIMEOUT,
            health_check_interval=conf.REDIS_HEALTH_CHECK_INTERVAL,
        )
        asyncio.run(run_until_signalled(bridge))
