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

__all__ = ["async_client", "new_async_client", "sync_client"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def new_async_client(timeout: float) -> aioredis.Redis:
    """Return a new asyncio client to ``JOBUPDATES_REDIS_URL`` with ``timeout`` seconds
    per command, retried once at once on a stale pooled connection."""
    return aioredis.Redis.from_url(
        conf.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 1),
    )


def async_client() -> aioredis.Redis:
    """Return the running event loop's shared client (``JOBUPDATES_REDIS_SOCKET_TIMEOUT``)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = new_async_client(conf.REDIS_SOCKET_TIMEOUT)
    return client


def sync_client(timeout: float | None = None) -> redis.Redis:
    """Return a new synchronous client, for views and commands.

    Args:
        timeout: Seconds per command; default ``JOBUPDATES_REDIS_SOCKET_TIMEOUT``.
    """
    seconds = conf.REDIS_SOCKET_TIMEOUT if timeout is None else timeout
    return redis.Redis.from_url(
        conf.REDIS_URL,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        retry=Retry(NoBackoff(), 1),
    )
