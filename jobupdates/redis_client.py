"""The Redis clients a server process shares (registry, history reads, tokens).

One asyncio client per event loop (Daphne runs one), and a synchronous one
for views. Timeouts are explicit: redis-py 8 defaults to 5 s.
"""

from __future__ import annotations

import asyncio
import weakref

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobupdates.conf import conf

__all__ = ["async_client", "sync_client"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def async_client() -> aioredis.Redis:
    """Return the running event loop's client to ``JOBUPDATES_REDIS_URL``."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        timeout = conf.REDIS_SOCKET_TIMEOUT
        client = _clients[loop] = aioredis.Redis.from_url(
            conf.REDIS_URL,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=AsyncRetry(NoBackoff(), 1),  # one immediate retry on a stale connection
        )
    return client


def sync_client() -> redis.Redis:
    """Return a new synchronous client to ``JOBUPDATES_REDIS_URL``, for views and commands."""
    timeout = conf.REDIS_SOCKET_TIMEOUT
    return redis.Redis.from_url(
        conf.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )
