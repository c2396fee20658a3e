"""The cluster-wide client registry: who is connected, to which process.

Each server process has one :class:`Registry` (per event loop). Its Redis
cost is fixed:

* connect: one pipelined round trip (the client's record, and the
  instance's heartbeat and membership), shared by every connect and
  disconnect that arrives while another is in flight
  (:mod:`jobupdates.monitoring.commits`);
* disconnect: the same (``HDEL``);
* one batched refresh per ``JOBUPDATES_REGISTRY_INTERVAL``: a transaction
  that writes every client's ``last_active`` and ``messages_sent`` (kept in
  memory) as one string, rewrites the records whose subscriptions changed,
  and renews the heartbeat and the clients hash, all with a TTL of two
  intervals;
* nothing per message.

The refresh encodes in chunks, yielding to the event loop between them, so
it never holds up deliveries for long (under 1 ms per chunk of 250 clients here).

Readers (:func:`jobupdates.monitoring.reading.read_snapshot`) trust only
instances whose heartbeat is alive, so the clients of a process killed by
SIGKILL vanish within two intervals. When the clients hash is found missing
(Redis lost its data) or a write failed, the next refresh rewrites every
record.
Registry failures are logged and counted, never raised into the consumer.
The key layout is in :mod:`jobupdates.monitoring.records`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobupdates import redis_client
from jobupdates.conf import conf
from jobupdates.monitoring import metrics
from jobupdates.monitoring.commits import GroupCommit
from jobupdates.monitoring.deliveries import counters
from jobupdates.monitoring.instance import expiry_ms, instance_id
from jobupdates.monitoring.records import (
    INSTANCES_KEY,
    ClientRecord,
    InstanceInfo,
    activity_fragment,
    activity_key,
    clients_key,
    header,
    instance_key,
    join_activity,
    parse_networks,
    resolve_remote_addr,
)
from jobupdates.per_loop import PerLoop

__all__ = ["DISCONNECT_EVENT", "LocalClient", "Registry", "get_registry"]

logger = logging.getLogger(__name__)

DISCONNECT_EVENT = "jobupdates.disconnect"
"""Channel-layer event the admin sends to a client's channel to disconnect it."""
COMPONENT = "registry"
ENCODE_CHUNK = 250
"""Records encoded between two yields to the event loop during a refresh."""


@dataclass(slots=True)
class LocalClient:
    """A client of this process, kept up to date by its consumer.

    Attributes:
        record: What is stored in Redis (``messages_sent`` is filled in on refresh).
        sent: Gives how many messages the client was sent so far.
        last_active: When it last sent a frame (Unix time).
        changed: Whether the record changed since it was last written.
    """

    record: ClientRecord
    sent: Callable[[], int]
    last_active: float
    changed: bool = False

    def resubscribe(self, subscriptions: list[str]) -> None:
        """Record new subscriptions; the next refresh writes them."""
        self.record.subscriptions = subscriptions
        self.changed = True

    def current(self) -> ClientRecord:
        """Return the record with the in-memory counters written in."""
        record = self.record
        record.last_active = self.last_active
        record.messages_sent = self.sent()
        return record


class Registry:
    """This process's clients, mirrored to Redis."""

    def __init__(self, client: aioredis.Redis, *, interval: float) -> None:
        """Args:
        client: The Redis to write to, with an explicit ``socket_timeout``.
        interval: Seconds between batched refreshes.
        """
        self.redis = client
        self.interval = interval
        self.ttl_ms = expiry_ms(interval)
        self.info = InstanceInfo(
            instance=instance_id(),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=time.time(),
            reported_at=time.time(),
        )
        self.clients: dict[str, LocalClient] = {}
        self._lock = asyncio.Lock()  # orders connect/disconnect writes around refreshes
        self._task: asyncio.Task[None] | None = None
        self._rewrite = False  # set when Redis may have lost records
        self._adds: dict[str, str] = {}  # client id -> record, to write in the next batch
        self._removes: set[str] = set()  # client ids to delete in the next batch
        self._commit = GroupCommit(self._write_pending)  # a storm's writes share round trips
        self._gauge = metrics.CONNECTIONS.labels(instance=self.instance)
        self._beat = metrics.REGISTRY_HEARTBEAT.labels(instance=self.instance)
        self._beat.set(self.info.started_at)  # goes stale if no heartbeat is ever written
        self._flushed_deliveries = counters.deliveries

    @property
    def instance(self) -> str:
        """This process's instance id."""
        return self.info.instance

    def _heartbeat(self) -> str:
        self.info = dataclasses.replace(self.info, reported_at=time.time())
        return self.info.to_json()

    async def register(
        self,
        scope: Mapping[str, Any],
        client_id: str,
        channel_name: str,
        subscriptions: list[str],
        sent: Callable[[], int],
    ) -> LocalClient:
        """Add a client that was just accepted; return once it is in Redis (with the
        other connects and disconnects of the moment: :mod:`jobupdates.monitoring.commits`).

        Args:
            scope: The connection's ASGI scope (user, peer, headers).
            client_id: The id sent in the welcome frame.
            channel_name: The consumer's channel, for the admin's disconnect.
            subscriptions: What it receives: job ids, or the all-jobs group.
            sent: Gives how many messages it was sent so far (read on refresh).
        """
        user = scope.get("user")
        authenticated = bool(getattr(user, "is_authenticated", False))
        peer = scope.get("client")
        headers = scope.get("headers", [])
        now = time.time()
        record = ClientRecord(
            client_id=client_id,
            channel_name=channel_name,
            user_id=getattr(user, "pk", None) if authenticated else None,
            username=str(user.get_username()) if authenticated and user is not None else "",
            remote_addr=resolve_remote_addr(
                peer[0] if peer else None,
                header(headers, b"x-forwarded-for"),
                parse_networks(conf.TRUSTED_PROXIES),
            ),
            user_agent=(header(headers, b"user-agent") or "")[:512],
            instance=self.instance,
            connected_at=now,
            last_active=now,
            subscriptions=subscriptions,
        )
        local = LocalClient(record, sent, now)
        self.clients[client_id] = local
        self._gauge.set(len(self.clients))
        metrics.CONNECTS.inc()
        self._ensure_refreshing()
        self._adds[client_id] = record.to_json()
        await self._commit()
        return local

    async def unregister(self, client_id: str) -> None:
        """Remove a client that disconnected; return once Redis has it (see
        :mod:`jobupdates.monitoring.commits`)."""
        if self.clients.pop(client_id, None) is None:
            return
        self._gauge.set(len(self.clients))
        metrics.DISCONNECTS.inc()
        self._adds.pop(client_id, None)
        self._removes.add(client_id)  # also if never written: a refresh may have written it
        await self._commit()

    async def _write_pending(self) -> None:
        adds, self._adds = self._adds, {}
        removes, self._removes = self._removes, set()
        async with self._lock:  # ordered around refreshes
            replies = await self._write(
                batch_name(adds, removes),
                lambda pipe: self._batch_commands(pipe, adds, removes),
                transaction=False,
            )
        if replies is not None and adds:  # the batch renewed the heartbeat
            self._beat.set(self.info.reported_at)

    def _batch_commands(self, pipe: Any, adds: dict[str, str], removes: set[str]) -> None:
        key = clients_key(self.instance)
        if removes:
            pipe.hdel(key, *removes)
        if adds:
            pipe.hset(key, mapping=adds)
            pipe.pexpire(key, self.ttl_ms)
            pipe.set(instance_key(self.instance), self._heartbeat(), px=self.ttl_ms)
            pipe.sadd(INSTANCES_KEY, self.instance)

    async def refresh(self) -> None:
        """Write activity and changed records, renew the TTLs: one round trip for all clients."""
        self._flush_metrics()
        async with self._lock:
            renewed = await self._refresh(rewrite=self._rewrite)
            if renewed is False and self.clients:
                logger.warning(
                    "registry: %s's clients were missing from Redis; rewriting them", self.instance
                )
                renewed = await self._refresh(rewrite=True)
            self._rewrite = renewed is None

    async def _refresh(self, *, rewrite: bool) -> bool | None:
        """One refresh round trip; return whether the clients hash exists (``None`` on failure)."""
        clients = list(self.clients.items())
        fragments: list[str] = []
        for start in range(0, len(clients), ENCODE_CHUNK):
            chunk = clients[start : start + ENCODE_CHUNK]
            fragments.append(activity_fragment({i: (c.last_active, c.sent()) for i, c in chunk}))
            await asyncio.sleep(0)  # let updates through between chunks
        records = await self._records(c for c in clients if rewrite or c[1].changed)
        key = clients_key(self.instance)

        def commands(pipe: Any) -> None:
            if rewrite:
                pipe.delete(key)
            if records:
                pipe.hset(key, mapping=records)
            pipe.pexpire(key, self.ttl_ms)
            pipe.set(activity_key(self.instance), join_activity(fragments), px=self.ttl_ms)
            pipe.set(instance_key(self.instance), self._heartbeat(), px=self.ttl_ms)
            pipe.sadd(INSTANCES_KEY, self.instance)

        replies = await self._write("refresh", commands, transaction=True)
        if replies is not None:
            self._beat.set(self.info.reported_at)
        return None if replies is None else bool(replies[int(rewrite) + int(bool(records))])

    async def _records(self, clients: Iterable[tuple[str, LocalClient]]) -> dict[str, str]:
        records: dict[str, str] = {}
        for index, (client_id, local) in enumerate(clients, 1):
            local.changed = False
            records[client_id] = local.current().to_json()
            if index % ENCODE_CHUNK == 0:
                await asyncio.sleep(0)
        return records

    async def _write(
        self, what: str, build: Callable[[Any], object], *, transaction: bool
    ) -> list[Any] | None:
        """Run ``build``'s commands in one round trip; return the replies, ``None`` on failure."""
        try:
            async with self.redis.pipeline(transaction=transaction) as pipe:
                build(pipe)
                return list(await pipe.execute())
        except (RedisError, OSError) as exc:
            metrics.REDIS_RECONNECTS.labels(component=COMPONENT).inc()
            logger.warning("registry %s failed (%s: %s)", what, type(exc).__name__, exc)
            self._rewrite = True  # what Redis holds may now be wrong
            return None

    def _flush_metrics(self) -> None:
        delivered = counters.deliveries - self._flushed_deliveries
        self._flushed_deliveries = counters.deliveries
        if delivered:
            metrics.DELIVERIES.inc(delivered)
        for latency in counters.drain_latencies():
            metrics.DELIVERY_LATENCY.observe(latency)

    def _ensure_refreshing(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.refresh()


def batch_name(adds: Mapping[str, str], removes: set[str]) -> str:
    """What a batch does, for its failure's log line: register, unregister, or both."""
    return " and ".join(n for n, todo in (("register", adds), ("unregister", removes)) if todo)


def _new_registry() -> Registry:
    client = redis_client.new_async_client(redis_client.Use.REGISTRY)
    return Registry(client, interval=conf.REGISTRY_INTERVAL)


get_registry = PerLoop(_new_registry)
"""The registry of the running event loop (one per server process)."""
