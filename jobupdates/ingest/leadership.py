"""One active bridge at a time: a fenced lease in Redis, and who may take it.

Every bridge runs an :class:`Election`, which calls :meth:`Lease.hold` a few
times per lease period (a standby every :data:`STANDBY_CHECK_SECONDS`). Each
call also renews the bridge's *candidacy*: whether it is subscribed, since
when, and on which Redis process (:mod:`jobupdates.ingest.lease_script`).

* **The holder** renews its lease. Every new holder gets a larger *token*
  (:class:`Tenure`), and the history records a batch only from the current
  one (:class:`~jobupdates.history.Fence`): a holder that was frozen past the
  TTL cannot record behind its successor, it finds itself deposed.
* **A free lease** (expired, released on a graceful stop) goes to the live
  candidate subscribed longest: the standby whose ring covers the gap, never a
  bridge started after it began while that one is alive.
* **A holder that re-subscribed** (it may have missed what was published
  meanwhile) hands the lease to a candidate subscribed longer.
* **After a Redis restart** (its run id changes), a bridge subscribes only
  once the holder has (:meth:`Election.wait_to_subscribe`), so the holder is
  the first subscriber and no PUBLISH reaches only a standby.

:meth:`Lease.release` hands over on a graceful stop: the standby takes the
lease within :data:`STANDBY_CHECK_SECONDS`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobupdates.history import Fence
from jobupdates.ingest.lease_script import HOLD, RELEASE
from jobupdates.ingest.stopping import pause
from jobupdates.protocol.logs import loggable

__all__ = ["COVER_MARGIN_MS", "Election", "Lease", "Previous", "Role", "Standing", "Tenure"]

logger = logging.getLogger(__name__)

STANDBY_CHECK_SECONDS = 0.25
"""How often a standby tries to take the lease (the holder renews every interval)."""
SUBSCRIBE_CHECK_SECONDS = 0.05
"""How often a bridge waiting to subscribe looks whether the holder has."""
HOLD_ATTEMPTS = 2
"""Tries of one :meth:`Election.check` on a refused or closed connection: after a
Redis restart, the first command on each pooled connection fails, the next reconnects."""
NOT_HELD = "-"
"""The fence of a bridge that holds no lease: no lease value is ever this."""
COVER_MARGIN_MS = 1000
"""How long before the old holder last had nothing in hand a new holder must have
subscribed for its ring to cover what the old one may not have recorded (a message
published just before may still have been on its way to the old holder)."""


class Role(enum.StrEnum):
    """Whether a bridge forwards updates, or waits to take over."""

    ACTIVE = "active"
    STANDBY = "standby"


class Previous(enum.StrEnum):
    """How the lease before a :class:`Tenure` ended."""

    NONE = "none"
    RELEASED = "released"
    EXPIRED = "expired"
    TRANSFERRED = "transferred"


@dataclass(frozen=True, slots=True)
class Tenure:
    """One holder's lease, as its value in Redis says.

    Attributes:
        value: The value itself: a write is fenced on it.
        token: Grows with every new holder (0 for a bridge of an older version).
        holder: The holder's name.
        previous: How the lease before it ended.
        drained_ms: When the previous holder last reported nothing in hand (0: never).
    """

    value: str
    token: int
    holder: str
    previous: Previous = Previous.NONE
    drained_ms: int = 0

    @classmethod
    def parse(cls, value: str) -> Tenure:
        """Read a lease value; one without a token is an older bridge's (just its name)."""
        parts = value.split(" ")
        if len(parts) != 5 or not parts[0].isdigit():
            return cls(value, 0, value)
        token, holder, _, previous, drained = parts
        try:
            before = Previous(previous)
        except ValueError:
            before = Previous.EXPIRED
        return cls(value, int(token), holder, before, int(drained) if drained.isdigit() else 0)

    def covers(self, since_ms: int | None) -> bool:
        """Whether a ring subscribed at ``since_ms`` holds everything the previous holder
        may not have recorded: it released the lease (it recorded all it received), or
        there was none, or (expired, transferred) it last had nothing in hand a margin
        after that subscription."""
        if self.previous in (Previous.NONE, Previous.RELEASED):
            return True  # TRANSFERRED, EXPIRED
        return since_ms is not None and since_ms <= self.drained_ms - COVER_MARGIN_MS


@dataclass(frozen=True, slots=True)
class Standing:
    """One :meth:`Lease.hold` answer.

    Attributes:
        holder: Who holds the lease; None if it is free.
        tenure: The lease as held; None if it is free.
        holder_listening: Whether the holder is subscribed on this Redis process.
        since_ms: When this bridge's current subscription began (Redis's clock).
        run_id: The Redis process answering (a restart changes it).
        others_listening: How many other live bridges are subscribed on it.
    """

    holder: str | None
    tenure: Tenure | None
    holder_listening: bool
    since_ms: int
    run_id: str
    others_listening: int = 0


class Lease:
    """A named, expiring, fenced lease held by one bridge."""

    def __init__(self, client: aioredis.Redis, key: str, holder: str, ttl_seconds: float) -> None:
        """Args:
        client: The Redis holding the lease.
        key: The lease's key (the other keys are named after it).
        holder: This bridge's unique name (no spaces).
        ttl_seconds: How long the lease lasts without renewal.
        """
        self.client = client
        self.key = key
        self.holder = holder
        self.ttl_ms = int(ttl_seconds * 1000)
        self.keys = [key, f"{key}:fence", f"{key}:drained", f"{key}:released", f"{key}:bridges"]
        self._hold = client.register_script(HOLD)
        self._release = client.register_script(RELEASE)

    async def hold(
        self, segment: int | None = None, run_id: str = "", *, drained: bool = False
    ) -> Standing:
        """Renew the lease if this bridge holds it, or take it if it is free and no live
        bridge is subscribed longer; renew this bridge's candidacy.

        Args:
            segment: This bridge's current subscription (a number it changes on each
                new one); None while it is not subscribed.
            run_id: The Redis process it subscribed on (:attr:`Standing.run_id`): a
                subscription on one that restarted since does not count.
            drained: Whether it has nothing in hand (everything it received is recorded).
        """
        subscription = "" if segment is None else str(segment)
        args: list[str | int] = [
            self.holder,
            self.ttl_ms,
            subscription,
            "1" if drained else "0",
            run_id,
        ]
        reply = await self._hold(keys=self.keys, args=args)
        holder, value, listening, since, run, others = (_text(part) for part in reply)
        return Standing(
            holder or None,
            Tenure.parse(value) if value else None,
            listening == "1",
            int(since),
            run,
            int(others),
        )

    async def release(self) -> None:
        """Withdraw this bridge's candidacy and give the lease up if it holds it."""
        await self._release(keys=self.keys, args=[self.holder])


class Election:
    """Keeps a bridge's :class:`Role` in step with a :class:`Lease`."""

    def __init__(
        self, lease: Lease, interval: float, drained: Callable[[], bool] = lambda: True
    ) -> None:
        """Args:
        lease: The lease all the bridges compete for.
        interval: Seconds between two attempts to hold it (a third of its TTL).
        drained: Whether the bridge has nothing in hand, reported with each renewal.
        """
        self.lease = lease
        self.interval = interval
        self.drained = drained
        self.role = Role.STANDBY
        self.segment: int | None = None
        """The bridge's current subscription, None while it is not subscribed."""
        self.run_id = ""
        """The Redis process the bridge subscribed on."""
        self.standing: Standing | None = None
        """The last answer; None if the last attempt failed (Redis unreachable)."""
        self.tenure: Tenure | None = None
        """This bridge's lease while it is the active one."""
        self.takeovers = 0
        self.decided = asyncio.Event()
        """Set once the first attempt to hold the lease has finished."""
        self._closed = False
        self._lock = asyncio.Lock()  # a check in flight never re-takes a released lease

    @property
    def holder_unknown(self) -> bool:
        """Whether the last attempt to hold the lease failed (Redis was unreachable)."""
        return self.decided.is_set() and self.standing is None

    @property
    def fence(self) -> Fence:
        """What the history must still hold for this bridge's writes to be recorded
        (while it is not the active bridge, nothing: every write is refused)."""
        return Fence(self.lease.key, self.tenure.value if self.tenure is not None else NOT_HELD)

    async def check(self) -> Role:
        """Try to hold the lease once, now; update and return this bridge's role.

        A failure (Redis unreachable) is logged and makes the bridge a standby.
        After :meth:`run` has released the lease, it does nothing.
        """
        async with self._lock:
            if self._closed:
                return self.role
            self.standing = await self._try_hold()
            self._set_role(self.standing)
            self.decided.set()
            return self.role

    def deposed(self) -> None:
        """The history refused a write: another bridge holds the lease now."""
        self.standing = None
        self._set_role(None)

    async def wait_to_subscribe(self, stopping: asyncio.Event) -> Standing | None:
        """Return once this bridge may subscribe: it holds the lease, or the holder is
        subscribed on this Redis process, or the lease is free (the candidate subscribed
        longest takes it). After a Redis restart the holder is so the first subscriber.

        A holder that does not subscribe within two TTLs (an older bridge, or one
        that cannot reach Redis's pub/sub) is not waited for longer: logged.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.lease.ttl_ms / 1000
        while not stopping.is_set():
            await self.check()
            standing = self.standing
            if standing is not None and (
                self.role is Role.ACTIVE or standing.holder is None or standing.holder_listening
            ):
                return standing
            if loop.time() > deadline:
                logger.warning(
                    "bridge %s: the active bridge %s has not subscribed after %.1fs; "
                    "subscribing anyway",
                    self.lease.holder,
                    loggable(standing.holder if standing else None),
                    2 * self.lease.ttl_ms / 1000,
                )
                return standing
            await pause(stopping, SUBSCRIBE_CHECK_SECONDS)
        return self.standing

    async def _try_hold(self) -> Standing | None:
        for attempt in range(1, HOLD_ATTEMPTS + 1):
            try:
                return await self.lease.hold(self.segment, self.run_id, drained=self.drained())
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
                held = self.role is Role.ACTIVE
                self.role, self.tenure = Role.STANDBY, None
                try:
                    await self.lease.release()
                    if held:
                        logger.info("bridge %s released the lease", self.lease.holder)
                except (RedisError, OSError) as exc:
                    logger.warning("could not release the bridge lease: %s", exc)

    def _set_role(self, standing: Standing | None) -> None:
        holder = standing.holder if standing else None
        role = Role.ACTIVE if holder == self.lease.holder else Role.STANDBY
        if role is Role.ACTIVE and standing is not None:
            self.tenure = standing.tenure
        if role is self.role:
            return
        self.role = role
        if role is Role.ACTIVE:
            self.takeovers += 1
            tenure = self.tenure
            logger.info(
                "bridge %s is now the active bridge (token %s; the last lease %s)",
                self.lease.holder,
                tenure.token if tenure else "?",
                tenure.previous if tenure else "?",
            )
        else:
            self.tenure = None
            logger.warning(
                "bridge %s is now a standby (active: %s)", self.lease.holder, loggable(holder)
            )


def _text(value: bytes | str | int) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)
