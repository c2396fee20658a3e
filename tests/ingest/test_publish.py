"""The workers' helper: validated, then PUBLISHed or XADDed; and ``--durable``."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
import redis
from django.core.management import call_command

from harness.updates import STREAM
from jobupdates.ingest.publish import PublishError, publish_job_update

EXPECTED = b'{"job_id":"j-1","status":"completed","data":{"rows":10}}'


@pytest.fixture
def client(redis_server):
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def test_durable_adds_the_workers_exact_json_to_the_ingest_stream(redis_server, client):
    entry_id = publish_job_update(redis_server.url, "j-1", "completed", {"rows": 10}, durable=True)
    assert client.xrange(STREAM) == [(str(entry_id).encode(), {b"payload": EXPECTED})]


def test_durable_trims_the_stream_with_maxlen(client):
    for n in range(300):
        publish_job_update(client, f"j-{n}", "queued", durable=True, stream_size=100)
    assert client.xlen(STREAM) < 300, "expected MAXLEN ~ to trim"


def test_plain_publishes_on_the_channel_and_returns_the_receivers(client):
    assert publish_job_update(client, "j-1", "completed", {"rows": 10}) == 0
    assert not client.exists(STREAM)


def test_what_the_bridge_would_reject_is_refused_and_not_sent(client):
    with pytest.raises(PublishError, match="unknown status 'done'"):
        publish_job_update(client, "j-1", "done", durable=True)
    assert not client.exists(STREAM)


def test_importable_and_usable_without_django_settings(redis_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JOBUPDATES_"))}
    code = (
        "import sys; from jobupdates.ingest.publish import publish_job_update;"
        "print(publish_job_update(sys.argv[1], 'j-1', 'completed', durable=True))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, redis_server.url],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "-" in result.stdout


def test_the_command_adds_to_the_stream_with_durable(redis_server, client):
    out = io.StringIO()
    call_command(
        "publish_job_update",
        "completed",
        "j-1",
        "--data",
        '{"rows": 10}',
        "--durable",
        "--redis-url",
        redis_server.url,
        stdout=out,
        stderr=io.StringIO(),
    )
    assert [fields for _, fields in client.xrange(STREAM)] == [{b"payload": EXPECTED}]
    assert f"added {EXPECTED.decode()} to '{STREAM}'" in out.getvalue()
