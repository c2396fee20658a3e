"""Every Redis client of jobupdates is built here, with one timeout policy.

Two kinds of client:

* The **listener** (:func:`listener`) holds one pub/sub subscription for as
  long as its process runs: the bridge's. It waits
  ``JOBUPDATES_REDIS_SOCKET_TIMEOUT`` to connect and per read, keeps TCP
  keepalive on, PINGs after ``JOBUPDATES_REDIS_HEALTH_CHECK_INTERVAL`` of
  silence to find a dead connection, and never retries: its owner reconnects
  with a backoff, and logs it.
* The **stream reader** (:func:`stream_reader`) blocks in ``XREADGROUP ... BLOCK``
  on the durable ingest stream: its socket timeout is the block plus
  ``JOBUPDATES_REDIS_SOCKET_TIMEOUT``, so an idle stream never times it out.
* A **command client** (:func:`async_client`, :func:`new_async_client`,
  :func:`sync_client`) waits its :class:`Use`'s timeout to connect and per
  command, and retries a command once, at once, on a stale pooled connection
  (the first command after a Redis restart).

The timeout of each :class:`Use` (:func:`timeout_for`):

* ``CORE``, ``JOBUPDATES_REDIS_SOCKET_TIMEOUT``: the bridge's commands (history,
  lease, dead letters, report); a server process's history reads and token checks.
* ``REGISTRY``, ``JOBUPDATES_REGISTRY_SOCKET_TIMEOUT``: the client registry's
  writes; ``/ws/stats``, ``/metrics`` and the admin.
* ``INTERACTIVE``, :data:`INTERACTIVE_TIMEOUT`: someone waits on it: the
  console's simulator, ``manage.py publish_job_update``.

Timeouts are always explicit: redis-py 8 defaults to 5 s. The channel layer's
clients are channels_redis's, configured by ``CHANNEL_LAYERS``
(:func:`jobupdates.redis_url.layer_host` turns the same URL into its host).

A ``redis+sentinel://`` URL (:mod:`jobupdates.redis_url`) gives a client of
the primary the sentinels name: redis-py asks them again whenever a
connection to it fails, so every client follows a failover on its next
connection (the sentinels get the same timeouts).
"""

from __future__ import annotations

import enum
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as async_sentinel
import redis.sentinel as sync_sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobupdates.conf import conf
from jobupdates.per_loop import PerLoop
from jobupdates.redis_url import is_sentinel, parse_sentinel

__all__ = [
    "INTERACTIVE_TIMEOUT",
    "Use",
    "async_client",
    "listener",
    "new_async_client",
    "stream_reader",
    "sync_client",
    "timeout_for",
]

INTERACTIVE_TIMEOUT = 5.0
"""Seconds a client someone waits on may take to connect, and per command."""


class Use(enum.Enum):
    """What a command client is for; it decides the client's timeout (:func:`timeout_for`)."""

    CORE = "core"
    REGISTRY = "registry"
    INTERACTIVE = "interactive"


def timeout_for(use: Use) -> float:
    """Return the seconds a client for ``use`` waits to connect, and per command."""
    if use is Use.REGISTRY:
        return conf.REGISTRY_SOCKET_TIMEOUT
    if use is Use.INTERACTIVE:
        return INTERACTIVE_TIMEOUT
    return conf.REDIS_SOCKET_TIMEOUT


def listener(url: str | None = None) -> aioredis.Redis:
    """Return a new asyncio client for one long-lived pub/sub subscription.

    Args:
        url: The Redis to use; default ``JOBUPDATES_REDIS_URL``.
    """
    return _async(
        url,
        conf.REDIS_SOCKET_TIMEOUT,
        retries=0,  # the owner reconnects itself, and logs it
        socket_keepalive=True,
        health_check_interval=conf.REDIS_HEALTH_CHECK_INTERVAL,
    )


def stream_reader(url: str | None, block_seconds: float) -> aioredis.Redis:
    """Return a new asyncio client for ``XREADGROUP ... BLOCK`` of ``block_seconds``.

    Its socket timeout (per read) is longer than the block: with redis-py 8's
    default of 5 s, a block of 5 s or more on an idle stream would time out.
    """
    seconds = block_seconds + conf.REDIS_SOCKET_TIMEOUT
    return _async(url, seconds, retries=0, socket_keepalive=True)


def new_async_client(use: Use, url: str | None = None) -> aioredis.Redis:
    """Return a new asyncio command client for ``use``.

    Args:
        use: What it is for, which sets its timeout.
        url: The Redis to use; default ``JOBUPDATES_REDIS_URL``.
    """
    return _async(url, timeout_for(use), retries=1)


def _new_core_client() -> aioredis.Redis:
    return new_async_client(Use.CORE)


async_client = PerLoop(_new_core_client)
"""The running event loop's shared ``CORE`` client (Daphne runs one loop)."""


def sync_client(use: Use, url: str | None = None) -> redis.Redis:
    """Return a new synchronous command client for ``use``, for views and commands.

    Args:
        use: What it is for, which sets its timeout.
        url: The Redis to use; default ``JOBUPDATES_REDIS_URL``.
    """
    seconds = timeout_for(use)
    url = url or conf.REDIS_URL
    options: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": Retry(NoBackoff(), 1),
    }
    if is_sentinel(url):
        client: redis.Redis = _primary(sync_sentinel, redis.Redis, url, seconds, options)
        return client
    return redis.Redis.from_url(url, **options)


def _async(url: str | None, seconds: float, *, retries: int, **options: Any) -> aioredis.Redis:
    url = url or conf.REDIS_URL
    options.update(_timeouts(seconds), retry=AsyncRetry(NoBackoff(), retries))
    if is_sentinel(url):
        client: aioredis.Redis = _primary(async_sentinel, aioredis.Redis, url, seconds, options)
        return client
    return aioredis.Redis.from_url(url, **options)


def _primary(
    sentinel: Any, redis_class: type[Any], url: str, seconds: float, options: dict[str, Any]
) -> Any:
    """A ``redis_class`` client of the primary the sentinels of ``url`` name, through
    ``sentinel`` (redis-py's sync or asyncio ``sentinel`` module)."""
    target = parse_sentinel(url)
    sentinels = sentinel.Sentinel(  # asked with the client's own timeouts and retries
        list(target.sentinels),
        sentinel_kwargs={
            **_timeouts(seconds),
            "retry": options["retry"],
            **target.sentinel_options(),
        },
    )
    return sentinels.master_for(
        target.service, redis_class=redis_class, **target.primary_options(), **options
    )


def _timeouts(seconds: float) -> dict[str, float]:
    return {"socket_timeout": seconds, "socket_connect_timeout": seconds}
