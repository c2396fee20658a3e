"""``manage.py run_bridge``: forward job updates from Redis to WebSocket clients."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobupdates import redis_client
from jobupdates.conf import conf, redis_url_problem
from jobupdates.history import History
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions
from jobupdates.ingest.dead_letters import DeadLetterWriter
from jobupdates.ingest.leadership import Lease
from jobupdates.ingest.report import BridgeStatsPublisher
from jobupdates.ingest.stopping import run_until_signalled
from jobupdates.monitoring.instance import instance_id


class Command(BaseCommand):
    help = (
        "Subscribe to the Redis channel of job updates and forward valid ones to WebSocket "
        "clients. Run two for a hot standby: one is active, the other takes over."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--channel", help=f"Redis channel to subscribe to (default: {conf.CHANNEL})."
        )
        parser.add_argument("--redis-url", help="Redis to use (default: JOBUPDATES_REDIS_URL).")

    def handle(self, *args: Any, **options: Any) -> None:
        layer = get_channel_layer()
        if layer is None:
            raise CommandError(
                "CHANNEL_LAYERS has no 'default' layer; the bridge has nowhere to send."
            )
        redis_url = options["redis_url"] or conf.REDIS_URL
        problem = redis_url_problem(redis_url)
        if problem:
            raise CommandError(f"--redis-url: {problem}")
        asyncio.run(self.run(redis_url, options["channel"] or conf.CHANNEL, layer))

    async def run(self, redis_url: str, channel: str, layer: Any) -> None:
        client = redis_client.new_async_client(redis_client.Use.CORE, redis_url)
        history = History.from_conf(client)
        bridge = Bridge(
            BridgeOptions(
                redis_url=redis_url,
                channel=channel,
                group=conf.GROUP,
                statuses=conf.STATUSES,
                max_payload_bytes=conf.MAX_PAYLOAD_BYTES,
                lease_interval=conf.BRIDGE_LEASE_TTL / 3,
                ingest_stream=conf.INGEST_STREAM,
                standby_buffer_seconds=conf.STANDBY_BUFFER_SECONDS,
                standby_buffer_messages=conf.STANDBY_BUFFER_MESSAGES,
            ),
            layer=layer,
            delays=functools.partial(backoff, conf.RECONNECT_INITIAL, conf.RECONNECT_MAX),
            history=history,
            lease=Lease(client, conf.BRIDGE_LEASE_KEY, instance_id(), conf.BRIDGE_LEASE_TTL),
            dead_letters=DeadLetterWriter(
                client, key=conf.DEAD_LETTER_KEY, size=conf.DEAD_LETTER_SIZE
            ),
        )
        try:
            await asyncio.gather(
                run_until_signalled(bridge),
                BridgeStatsPublisher(client, interval=conf.REGISTRY_INTERVAL).run(bridge),
            )
        finally:
            await client.aclose()
