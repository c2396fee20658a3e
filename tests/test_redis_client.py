"""The one factory of Redis clients: who may build one, and its timeout policy."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import redis

from harness.sentinels import SentinelCluster
from jobupdates import redis_client
from jobupdates.redis_client import INTERACTIVE_TIMEOUT, Use

PACKAGE = Path(redis_client.__file__).parent
CONSTRUCTION = re.compile(r"\bfrom_url\(|\bRedis\(|\bStrictRedis\(|\bConnectionPool\b|\bSentinel\(")


def test_only_redis_client_builds_a_redis_client():
    builders = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if CONSTRUCTION.search(path.read_text())
    )
    assert builders == ["jobupdates/redis_client.py"], (
        "expected every Redis client built by jobupdates.redis_client"
    )


def options(client) -> dict:
    return client.connection_pool.connection_kwargs


def test_the_listener_keeps_alive_checks_health_and_never_retries(settings):
    settings.JOBUPDATES_REDIS_SOCKET_TIMEOUT = 7
    settings.JOBUPDATES_REDIS_HEALTH_CHECK_INTERVAL = 3
    found = options(redis_client.listener("redis://127.0.0.1:9/0"))
    assert (found["socket_timeout"], found["socket_connect_timeout"]) == (7, 7)
    assert (found["socket_keepalive"], found["health_check_interval"]) == (True, 3)
    assert found["retry"].get_retries() == 0, "expected the bridge to reconnect itself"
    assert (found["host"], found["port"]) == ("127.0.0.1", 9)


@pytest.mark.parametrize(
    ("use", "seconds"), [(Use.CORE, 7), (Use.REGISTRY, 2), (Use.INTERACTIVE, INTERACTIVE_TIMEOUT)]
)
async def test_command_clients_wait_their_uses_timeout_and_retry_once(settings, use, seconds):
    settings.JOBUPDATES_REDIS_SOCKET_TIMEOUT = 7
    settings.JOBUPDATES_REGISTRY_SOCKET_TIMEOUT = 2
    settings.JOBUPDATES_REDIS_URL = "redis://127.0.0.1:9/3"
    for client in (redis_client.new_async_client(use), redis_client.sync_client(use)):
        found = options(client)
        assert (found["socket_timeout"], found["socket_connect_timeout"]) == (seconds, seconds)
        assert found["retry"].get_retries() == 1
        assert (found["port"], found["db"]) == (9, 3), "expected JOBUPDATES_REDIS_URL"
        assert "health_check_interval" not in found


async def test_the_shared_client_is_one_core_client_per_event_loop(settings):
    settings.JOBUPDATES_REDIS_SOCKET_TIMEOUT = 7
    client = redis_client.async_client()
    assert redis_client.async_client() is client
    assert options(client)["socket_timeout"] == 7


SENTINEL_URL = "redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/botrix/3?sentinel_password=sp"


def test_a_sentinel_url_gives_a_client_of_the_primary_with_the_same_policy(settings):
    settings.JOBUPDATES_REDIS_SOCKET_TIMEOUT = 7
    client = redis_client.listener(SENTINEL_URL)
    pool = client.connection_pool
    assert (pool.service_name, pool.connection_kwargs["db"]) == ("botrix", 3)
    assert pool.connection_kwargs["password"] == "pw"
    settings.JOBUPDATES_REDIS_HEALTH_CHECK_INTERVAL = 3
    assert options(redis_client.listener(SENTINEL_URL))["health_check_interval"] == 3
    assert options(client)["socket_timeout"] == 7
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (sentinel["port"], sentinel["password"], sentinel["socket_timeout"]) == (1, "sp", 7)
    sync = redis_client.sync_client(Use.INTERACTIVE, SENTINEL_URL)
    assert sync.connection_pool.connection_kwargs["socket_timeout"] == INTERACTIVE_TIMEOUT


@pytest.fixture
def sentinels(tmp_path):
    cluster = SentinelCluster(tmp_path).start()
    yield cluster
    cluster.stop()


async def test_clients_follow_a_failover_to_the_promoted_replica(sentinels):
    sync = redis_client.sync_client(Use.CORE, sentinels.url)
    client = redis_client.new_async_client(Use.CORE, sentinels.url)
    await client.set("before", "1")
    assert await client.wait(1, 5000) == 1, "expected the replica to acknowledge it"
    old = sentinels.kill_primary()
    await asyncio.to_thread(sentinels.wait_for_failover, old)
    for _ in range(50):  # the first command after may find the old primary's pool entry
        try:
            await client.set("after", "2")
            break
        except (ConnectionError, redis.exceptions.RedisError):
            await asyncio.sleep(0.1)
    assert await client.get("before") == b"1", "expected the replica to have had it"
    assert sync.get("after") == b"2"
    assert sentinels.primary_port() == sentinels.replica.port
    await client.aclose()
    sync.close()


def test_the_primarys_and_the_sentinels_passwords_both_come_from_the_url(tmp_path):
    cluster = SentinelCluster(tmp_path, password="primary-pw", sentinel_password="watch-pw")
    cluster.start()
    try:
        client = redis_client.sync_client(Use.INTERACTIVE, cluster.url)
        assert client.set("k", "v")
        client.close()
        no_primary_password = cluster.url.replace(":primary-pw@", "")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis_client.sync_client(Use.INTERACTIVE, no_primary_password).set("k", "v")
        no_sentinel_password = cluster.url.partition("?")[0]
        with pytest.raises(redis.exceptions.RedisError):  # no sentinel answers without it
            redis_client.sync_client(Use.INTERACTIVE, no_sentinel_password).set("k", "v")
    finally:
        cluster.stop()
