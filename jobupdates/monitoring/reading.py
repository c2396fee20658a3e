"""Reading the client registry: every live instance and its clients, from any process.

The writer is :mod:`jobupdates.monitoring.registry`; the key layout and the
merge are in :mod:`jobupdates.monitoring.records`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from jobupdates.monitoring.records import (
    INSTANCES_KEY,
    Snapshot,
    activity_key,
    clients_key,
    instance_key,
    merge_snapshot,
)

__all__ = ["read_snapshot"]


def _names(values: Iterable[Any]) -> list[str]:
    return sorted(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def read_snapshot(client: redis.Redis) -> Snapshot:
    """Read every live instance and its clients (two round trips); prune dead instances.

    Raises:
        redis.exceptions.RedisError: If Redis cannot be read.
    """
    ids = _names(client.smembers(INSTANCES_KEY))
    if not ids:
        return Snapshot(instances={}, clients=[])
    with client.pipeline(transaction=False) as pipe:
        for instance in ids:
            pipe.get(instance_key(instance))
            pipe.hgetall(clients_key(instance))
            pipe.get(activity_key(instance))
        replies = pipe.execute()
    snapshot = merge_snapshot(
        dict(zip(ids, replies[0::3], strict=True)),
        dict(zip(ids, replies[1::3], strict=True)),
        dict(zip(ids, replies[2::3], strict=True)),
    )
    if snapshot.dead:
        client.srem(INSTANCES_KEY, *snapshot.dead)
    return snapshot
