"""Fixtures of the bridge's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer

from botrix_site.redis_server import RedisServer
from jobupdates.history import History

GROUP = "jobupdates.all"
"""The all-jobs group the bridge sends to (JOBUPDATES_GROUP's default)."""
HISTORY = "botrix:jobs:history"
"""The history stream's key (JOBUPDATES_HISTORY_KEY's default)."""


def make_history(client: aioredis.Redis) -> History:
    """The history the bridge's tests record into: large, untrimmed by age."""
    return History(
        client,
        stream_key=HISTORY,
        state_prefix="botrix:jobs:state:",
        max_entries=10_000,
        max_age_seconds=0,
        state_ttl_seconds=60,
    )


@pytest.fixture
async def member() -> tuple[InMemoryChannelLayer, str]:
    """An in-memory channel layer and one channel in :data:`GROUP`, as a Daphne has."""
    layer = InMemoryChannelLayer(capacity=10_000)
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    return layer, channel


@pytest.fixture
def sync(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client of the test's Redis, for what a worker or a reader does."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
