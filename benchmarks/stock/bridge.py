"""The stock bridge: subscribe, ``json.loads``, ``group_send`` the parsed dict.

``DJANGO_SETTINGS_MODULE=benchmarks.stock.settings python -m benchmarks.stock.bridge``
prints ``-> subscribed`` once it listens, like ``manage.py run_bridge``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal

import django

logger = logging.getLogger(__name__)

CHANNEL = "botrix:jobs:updates"
GROUP = "jobupdates.all"


async def run() -> None:
    """Forward every message until SIGTERM or SIGINT."""
    import redis.asyncio as aioredis
    from channels.layers import get_channel_layer
    from django.conf import settings

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    layer = get_channel_layer()
    assert layer is not None
    client = aioredis.Redis.from_url(settings.REDIS_URL, socket_timeout=30)
    async with client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(CHANNEL)
        print("stock bridge -> subscribed", flush=True)
        while not stop.is_set():
            message = await pubsub.get_message(timeout=0.5)
            if message is not None:
                update = json.loads(message["data"])
                await layer.group_send(GROUP, {"type": "job.update", **update})


def main() -> None:
    django.setup()
    asyncio.run(run())


if __name__ == "__main__":
    main()
