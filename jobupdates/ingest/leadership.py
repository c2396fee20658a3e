"""One active bridge at a time: a lease in Redis, renewed by its holder.

Every bridge runs an :class:`Election`, which calls :meth:`Lease.hold` a few
times per lease period (a standby every :data:`STANDBY_CHECK_SECONDS`). The
holder renews its lease; a standby takes the key once the holder stops
renewing it (a crash, kill -9, a partition) and the lease expires.
:meth:`Lease.release` hands over on a graceful stop: the standby takes the
lease within :data:`STANDBY_CHECK_SECONDS`.

A restarted Redis has lost the lease key, and every bridge's last attempt
failed, so none knows who is active. :meth:`Election.check` settles it at
once: a bridge calls it right after it re-subscribes, and again before it
skips an update while the holder is unknown, so the first bridge back takes
the free lease before it reads a message instead of up to an interval later.
"""

from __future__ import annotations

import asyncio
import enum
import logging

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobupdates.ingest.stopping import pause
from jobupdates.protocol.logs import loggable

__all__ = ["Election", "Lease", "Role"]

logger = logging.getLogger(__name__)

STANDBY_CHECK_SECONDS = 0.25
"""How often a standby tries to take the lease (the holder renews every interval)."""
HOLD_ATTEMPTS = 2
"""Tries of one :meth:`Election.check` on a refused or closed connection: after a
Redis restart, the first command on each pooled connection fails, the next reconnects."""

# Renews the lease if ARGV[1] holds it, takes it if it is free; returns the holder.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return holder
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """A named, expiring lease held by one bridge."""

    def __init__(self, client: aioredis.Redis, key: str, holder: str, ttl_seconds: float) -> None:
        """Args:
        client: The Redis holding the lease.
        key: The lease's key.
        holder: This bridge's unique name.
        ttl_seconds: How long the lease lasts without renewal.
        """
        self.client = client
        self.key = key
        self.holder = holder
        self.ttl_ms = int(ttl_seconds * 1000)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    async def hold(self) -> str:
        """Renew the lease if this bridge holds it, or take it if it is free.

        Returns:
            Who holds the lease now: :attr:`holder` if this bridge does.
        """
        value = await self._hold(keys=[self.key], args=[self.holder, self.ttl_ms])
        return value.decode() if isinstance(value, bytes) else str(value)

    async def release(self) -> None:
        """Give the lease up if this bridge holds it."""
        await self._release(keys=[self.key], args=[self.holder])


class Role(enum.StrEnum):
    """Whether a bridge forwards updates, or waits to take over."""

    ACTIVE = "active"
    STANDBY = "standby"


class Election:
    """Keeps a bridge's :class:`Role` in step with a :class:`Lease`."""

    def __init__(self, lease: Lease, interval: float) -> None:
        """Args:
        lease: The lease all the bridges compete for.
        interval: Seconds between two attempts to hold it (a third of its TTL).
        """
        self.lease = lease
        self.interval = interval
        self.role = Role.STANDBY
        self.holder: str | None = None
        """Who held the lease at the last attempt; None if that attempt failed."""
        self.takeovers = 0
        self.decided = asyncio.Event()
        """Set once the first attempt to hold the lease has finished."""
        self._closed = False
        self._lock = asyncio.Lock()  # a check in flight never re-takes a released lease

    @property
    def holder_unknown(self) -> bool:
        """Whether the last attempt to hold the lease failed (Redis was unreachable)."""
        return self.decided.is_set() and self.holder is None

    async def check(self) -> Role:
        """Try to hold the lease once, now; update and return this bridge's role.

        A failure (Redis unreachable) is logged and makes the bridge a standby.
        After :meth:`run` has released the lease, it does nothing.
        """
        async with self._lock:
            if self._closed:
                return self.role
            holder = await self._try_hold()
            self.holder = holder
            self._set_role(holder)
            self.decided.set()
            return self.role

    async def _try_hold(self) -> str | None:
        for attempt in range(1, HOLD_ATTEMPTS + 1):
            try:
                return await self.lease.hold()
            except RedisConnectionError as exc:
                if attempt == HOLD_ATTEMPTS:
                    logger.warning(
                        "cannot renew the bridge lease (%s: %s)", type(exc).__name__, exc
                    )
            except (RedisError, OSError) as exc:
                logger.warning("cannot renew the bridge lease (%s: %s)", type(exc).__name__, exc)
                break
        return None

    async def run(self, stopping: asyncio.Event) -> None:
        """Hold or watch the lease until ``stopping`` is set, then release it."""
        try:
            while not stopping.is_set():
                await self.check()
                standby = self.role is Role.STANDBY
                await pause(
                    stopping,
                    min(self.interval, STANDBY_CHECK_SECONDS) if standby else self.interval,
                )
        finally:
            async with self._lock:
                self._closed = True
                self._set_role(None)
                try:
                    await self.lease.release()
                except (RedisError, OSError) as exc:
                    logger.warning("could not release the bridge lease: %s", exc)

    def _set_role(self, holder: str | None) -> None:
        role = Role.ACTIVE if holder == self.lease.holder else Role.STANDBY
        if role is self.role:
            return
        self.role = role
        if role is Role.ACTIVE:
            self.takeovers += 1
            logger.info("bridge %s is now the active bridge", self.lease.holder)
        else:
            logger.warning(
                "bridge %s is now a standby (active: %s)", self.lease.holder, loggable(holder)
            )
