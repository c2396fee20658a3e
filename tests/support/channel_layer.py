"""The project's channel layer as Redis sees it: the all-jobs group's pub/sub channel."""

from __future__ import annotations

import asyncio
import json
import time

import redis
from channels_redis.pubsub import RedisPubSubLoopLayer

from jobupdates.conf import conf


def group_channel(prefix: str | None = None) -> str:
    """Return the Redis channel that the pub/sub layer (the project's, and so the fast
    path's) PUBLISHes the all-jobs group on: the layer names it, from its ``prefix``
    (channels_redis's default unless given) and ``JOBUPDATES_GROUP``."""
    layer = RedisPubSubLoopLayer() if prefix is None else RedisPubSubLoopLayer(prefix=prefix)
    return str(layer._get_group_channel_name(conf.GROUP))


def wait_for_daphne_subscribed(url: str, timeout: float = 10.0) -> None:
    """Block until a Daphne's pub/sub layer is subscribed to the all-jobs group on the
    Redis at ``url`` (after a Redis restart, it subscribes again by itself).

    In async tests: ``await asyncio.to_thread(wait_for_daphne_subscribed, url)``.
    """
    channel = group_channel()
    probe = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while probe.pubsub_numsub(channel)[0][1] < 1:
            assert time.monotonic() < deadline, (
                f"expected a Daphne subscribed to {channel!r} within {timeout}s, got none"
            )
            time.sleep(0.05)
    finally:
        probe.close()


class Recorder:
    """A sink that records the text of every websocket.send it gets."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.arrived = asyncio.Event()

    async def __call__(self, message: dict) -> None:
        assert message["type"] == "websocket.send"
        self.texts.append(message["text"])
        self.arrived.set()

    async def wait_for(self, count: int) -> None:
        while len(self.texts) < count:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 5)

    def seqs(self) -> list[int]:
        return [json.loads(t)["seq"] for t in self.texts]
