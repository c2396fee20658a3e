"""docker/compose.sentinel.yaml checked without Docker, and the bridge's healthcheck
run for real against both kinds of Redis URL."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import redis
import yaml

from harness.processes import ROOT
from harness.sentinels import SentinelCluster
from jobupdates.redis_url import parse_sentinel, redis_url_problem
from tests.e2e.test_nginx import DOCKER, load_compose, schema_errors

pytestmark = pytest.mark.e2e

OVERRIDE = DOCKER / "compose.sentinel.yaml"
CHANNEL = "botrix:jobs:updates"


def load_override() -> dict[str, Any]:
    override: dict[str, Any] = yaml.safe_load(OVERRIDE.read_text())
    return override


def test_the_sentinel_variant_is_valid_and_points_every_app_service_at_the_sentinels():
    override = load_override()
    assert schema_errors(override) == []
    services = {**load_compose()["services"], **override["services"]}
    sentinels = sorted(name for name in services if name.startswith("sentinel-"))
    assert sentinels == ["sentinel-1", "sentinel-2", "sentinel-3"]
    for name in ("setup", "web", "bridge"):
        url = override["services"][name]["environment"]["REDIS_URL"]
        assert redis_url_problem(url) is None, url
        target = parse_sentinel(url)
        assert sorted(host for host, _ in target.sentinels) == sentinels
        assert target.service == "botrix"
    command = " ".join(services["sentinel-1"]["command"])
    assert "sentinel monitor botrix redis 6379 2" in command, "expected the primary watched"
    replica = services["redis-replica"]["command"]
    assert replica[-3:] == ["--replicaof", "redis", "6379"]


def bridge_healthcheck() -> str:
    test = load_compose()["services"]["bridge"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code: str = test[3]
    return code


def healthy(url: str) -> bool:
    """Run the bridge's healthcheck as the image does, against ``url``."""
    result = subprocess.run(
        [sys.executable, "-c", bridge_healthcheck()],
        cwd=ROOT,
        env={"REDIS_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


@pytest.mark.parametrize("kind", ["direct", "sentinel"])
def test_the_bridge_healthcheck_works_with_either_url(kind, redis_server, tmp_path):
    cluster = SentinelCluster(tmp_path).start() if kind == "sentinel" else None
    try:
        url = cluster.url if cluster else redis_server.url
        port = cluster.primary.port if cluster else redis_server.port
        assert not healthy(url), "expected unhealthy with no bridge subscribed"
        subscriber = redis.Redis(port=port, socket_timeout=5).pubsub()
        subscriber.subscribe(CHANNEL)
        assert healthy(url)
        subscriber.close()
    finally:
        if cluster:
            cluster.stop()
