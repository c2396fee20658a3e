"""This process's id and record lifetime: computed in one place, shared by all writers."""

from __future__ import annotations

import os
import socket

import redis.asyncio as aioredis

from jobupdates.ingest.report import BridgeStatsPublisher
from jobupdates.monitoring.instance import expiry_ms, instance_id
from jobupdates.monitoring.registry import Registry


def test_the_instance_id_is_host_pid_and_suffix_computed_once():
    host, pid, suffix = instance_id().rsplit(":", 2)
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert len(suffix) == 6
    assert instance_id() == instance_id()


async def test_the_registry_and_the_bridge_report_name_this_process_alike():
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_timeout=1)
    registry = Registry(client, interval=10)
    publisher = BridgeStatsPublisher(client, interval=10)
    assert registry.instance == publisher.bridge_id == instance_id()
    assert registry.ttl_ms == expiry_ms(10) == 20_000
    await client.aclose()


def test_records_live_two_intervals_and_at_least_a_millisecond():
    assert expiry_ms(0.25) == 500
    assert expiry_ms(0) == 1
