"""A Redis primary, a replica and three sentinels, on free ports, for failover tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import redis

from botrix_site.redis_server import RedisServer

__all__ = ["SERVICE", "SentinelCluster"]

SERVICE = "botrix"
"""The service name the sentinels monitor."""
DOWN_AFTER_MS = 1000
"""How long the primary must be silent before a sentinel thinks it down."""


class SentinelCluster:
    """Real ``redis-server`` processes: a primary, a replica of it, and three
    sentinels (quorum 2) watching them as :data:`SERVICE`."""

    def __init__(self, directory: Path, *, password: str = "", sentinel_password: str = "") -> None:
        """Args:
        directory: Where the sentinels' configuration files go.
        password: The primary's and the replica's ``requirepass`` (none if empty).
        sentinel_password: The sentinels' own ``requirepass`` (none if empty).
        """
        self.directory = directory
        self.password = password
        self.sentinel_password = sentinel_password
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        self.primary = RedisServer(extra=("--repl-diskless-sync-delay", "0", *auth))
        self.replica = RedisServer(
            extra=("--replicaof", "127.0.0.1", str(self.primary.port), *auth)
        )
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the service (database 0), with its passwords."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        userinfo = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{userinfo}{hosts}/{SERVICE}/0{query}"

    def start(self) -> SentinelCluster:
        self.primary.start()
        self.replica.start()
        self._wait_replicating(self.replica.port)
        for n in range(3):
            config = self.directory / f"sentinel-{n}.conf"
            config.write_text(
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
                + (f"sentinel auth-pass {SERVICE} {self.password}\n" if self.password else "")
                + (
                    f"requirepass {self.sentinel_password}\n"
                    f"sentinel sentinel-pass {self.sentinel_password}\n"
                    if self.sentinel_password
                    else ""
                )
            )
            sentinel = RedisServer(config=str(config), extra=("--sentinel",), ready="+monitor")
            self.sentinels.append(sentinel.start())
        return self

    def primary_port(self) -> int:
        """The port of the primary the sentinels name now."""
        client = redis.Redis(
            port=self.sentinels[0].port,
            password=self.sentinel_password or None,
            socket_timeout=5,
        )
        try:
            address: Any = client.sentinel_get_master_addr_by_name(SERVICE)
        finally:
            client.close()
        return int(address[1])

    def wait_replicated(self, timeout_ms: int = 10_000) -> int:
        """Return once the replica holds every write the primary took so far (or the
        timeout passed): the number of replicas that acknowledged them, from ``WAIT``.

        ``WAIT`` waits for the writes of its own connection, so it follows one: the
        replication stream is one ordered stream, so a replica that acknowledged this
        write holds every write the primary took before it, the bridges' included.
        """
        client = redis.Redis(
            port=self.primary.port, password=self.password or None, socket_timeout=30
        )
        try:
            client.incr(f"{SERVICE}:tests:replicated")
            return int(client.wait(1, timeout_ms))
        finally:
            client.close()

    def kill_primary(self) -> int:
        """SIGKILL the primary; return its port."""
        port = self.primary.port
        assert self.primary.process is not None
        self.primary.process.kill()
        self.primary.process.wait()
        self.primary.stop()  # forgets the process, removes its directory
        return port

    def wait_for_failover(self, old_port: int, timeout: float = 30.0) -> float:
        """Wait until the sentinels name another primary; return the seconds it took."""
        started = time.monotonic()
        while self.primary_port() == old_port:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"expected a failover within {timeout} s")
            time.sleep(0.1)
        return time.monotonic() - started

    def _wait_replicating(self, port: int, timeout: float = 20.0) -> None:
        client = redis.Redis(port=port, password=self.password or None, socket_timeout=5)
        deadline = time.monotonic() + timeout
        try:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise AssertionError("expected the replica to sync with the primary")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.primary]:
            server.stop()
