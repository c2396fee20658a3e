"""Dead letters and throttled rejection logs: encoding, the capped Redis list, the flood.

The list is written to a real throwaway Redis; the flood test runs the real
bridge in-process against it with the in-memory channel layer.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time

import pytest
import redis
import redis.asyncio as aioredis
from channels.layers import InMemoryChannelLayer
from django.contrib.auth.models import User

from botrix_site.redis_server import free_port
from harness.updates import CHANNEL
from jobupdates.ingest.backoff import backoff
from jobupdates.ingest.bridge import Bridge, BridgeOptions, BridgeState
from jobupdates.ingest.dead_letters import DeadLetterWriter, read_dead_letters
from jobupdates.ingest.rejections import LogThrottle, Rejections
from jobupdates.protocol import InvalidJobUpdate, RejectReason
from jobupdates.protocol.dead_letters import (
    PREVIEW_BYTES,
    PreviewEncoding,
    dead_letter,
    decode_dead_letter,
    preview_of,
)

KEY = "botrix:jobs:dead-letters"
GROUP = "jobupdates.all"
VALID = {"job_id": "j-1", "status": "completed", "data": None}


def letter(payload: bytes = b"{oops", reason: str = "invalid_json", at: float = 1.0):
    return dead_letter(payload, channel=CHANNEL, reason=reason, detail="bad", received_at=at)


# -- the entry (pure) --------------------------------------------------------------------------


def test_printable_utf8_is_kept_as_text_and_round_trips():
    entry = letter('{"job_id":"é","status":"done"}'.encode(), "unknown_status", 12.5)
    assert (entry.encoding, entry.truncated, entry.size) == (PreviewEncoding.TEXT, False, 31)
    back = decode_dead_letter(entry.to_json())
    assert back == entry
    assert back.preview == '{"job_id":"é","status":"done"}'
    assert entry.to_json().isascii()


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00", b"a\x00b", b"\x1b[31mred", b"a\x7fb"])
def test_binary_or_control_characters_are_kept_as_base64(payload):
    preview, encoding = preview_of(payload)
    assert encoding is PreviewEncoding.BASE64
    assert base64.b64decode(preview) == payload


def test_a_large_payload_keeps_1_kib_and_a_cut_character_is_dropped():
    payload = b"x" * (PREVIEW_BYTES - 1) + "é".encode() + b"y" * 5000
    entry = letter(payload)
    assert entry.encoding is PreviewEncoding.TEXT
    assert entry.preview == "x" * (PREVIEW_BYTES - 1)
    assert (entry.size, entry.truncated) == (len(payload), True)


def test_the_detail_is_bounded_and_garbage_does_not_decode():
    entry = dead_letter(b"x", channel=CHANNEL, reason="r", detail="d" * 10_000, received_at=0)
    assert len(entry.detail) == 500
    for raw in (b"not json", b"[]", b"{}", b'{"id":1}', '{"encoding":"rot13"}'):
        assert decode_dead_letter(raw) is None


# -- the log throttle (pure) -------------------------------------------------------------------


def test_throttle_logs_the_burst_then_counts_and_sums_up_by_reason():
    throttle = LogThrottle(rate=1, burst=3, summary_seconds=5)
    assert [throttle.admit("a", 0.0) for _ in range(5)] == [True, True, True, False, False]
    throttle.admit("b", 0.0)
    assert throttle.summary(4.9) is None, "expected no summary before it is due"
    assert throttle.summary(5.0) == ({"a": 2, "b": 1}, 5.0)
    assert throttle.summary(100.0) is None, "expected the counts reset after a summary"
    assert throttle.admit("a", 100.0), "expected the bucket refilled"


# -- the list in Redis -------------------------------------------------------------------------


async def test_writer_pushes_batches_newest_first_and_caps_the_list(redis_server):
    client = aioredis.Redis.from_url(redis_server.url)
    writer = DeadLetterWriter(client, key=KEY, size=100, batch=40)
    ready = [writer.add(letter(f"m{i}".encode(), at=i)) for i in range(40)]
    assert ready == [False] * 39 + [True], "expected a flush asked for once a batch is full"
    await writer.flush()
    for i in range(40, 250):
        writer.add(letter(f"m{i}".encode(), at=i))
    assert writer.pending == 100, "expected the buffer bounded by the list's size"
    await writer.flush()
    sync = redis.Redis.from_url(redis_server.url)
    letters, kept = read_dead_letters(sync, KEY, 5)
    assert kept == 100
    assert [x.preview for x in letters] == ["m249", "m248", "m247", "m246", "m245"]
    assert writer.written == 140
    await client.aclose()
    sync.close()


async def test_a_failed_write_is_logged_and_counted_never_raised(caplog):
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1)
    writer = DeadLetterWriter(client, key=KEY, size=10)
    writer.add(letter())
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.dead_letters"):
        await writer.flush()
    assert writer.failed == 1
    assert "could not write 1 dead letter(s)" in caplog.text
    await client.aclose()


async def test_rejections_log_summary_and_dead_letters_at_close(redis_server, caplog):
    client = aioredis.Redis.from_url(redis_server.url)
    log = logging.getLogger("jobupdates.ingest.bridge")
    rejections = Rejections(
        CHANNEL,
        log=log,
        dead_letters=DeadLetterWriter(client, key=KEY, size=1000),
        throttle=LogThrottle(rate=0.01, burst=2, summary_seconds=60),
    )
    error = InvalidJobUpdate(RejectReason.INVALID_JSON, "expected a JSON object")
    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        for _ in range(5):
            await rejections.reject(error, b"{oops", time.time())
        await rejections.reject(error, b"{standby", time.time(), keep=False)
        await rejections.aclose()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if line.startswith("rejected message")]) == 2
    assert any("4 rejected message(s)" in line and "invalid_json=4" in line for line in lines)
    assert await client.llen(KEY) == 5, "expected one dead letter per kept rejection"
    await client.aclose()


async def test_flood_of_100000_malformed_messages_does_not_stop_a_valid_one(redis_server, caplog):
    layer = InMemoryChannelLayer()
    member = await layer.new_channel()
    await layer.group_add(GROUP, member)
    client = aioredis.Redis.from_url(redis_server.url)
    bridge = Bridge(
        BridgeOptions(redis_url=redis_server.url, channel=CHANNEL, group=GROUP),
        layer=layer,
        delays=functools.partial(backoff, 0.05, 0.2),
        dead_letters=DeadLetterWriter(client, key=KEY, size=1000),
    )
    task = asyncio.create_task(bridge.run())
    await asyncio.wait_for(bridge.wait_for_state(BridgeState.SUBSCRIBED), 5)
    publisher = redis.Redis.from_url(redis_server.url)
    bad = [b"not json %d", b"[%d]", b'{"job_id":"a%d","status":"exploded"}']

    def flood() -> None:  # the last is an unknown_status
        with publisher.pipeline(transaction=False) as pipe:
            for i in range(100_000):
                pipe.publish(CHANNEL, bad[(i + 2) % 3] % i)
            pipe.publish(CHANNEL, json.dumps(VALID))
            pipe.execute()

    with caplog.at_level(logging.WARNING, logger="jobupdates.ingest.bridge"):
        await asyncio.to_thread(flood)
        message = await asyncio.wait_for(layer.receive(member), 60)
        assert json.loads(message["text"])["job_id"] == "j-1"
        assert not task.done(), "expected the bridge still running"
        assert bridge.state is BridgeState.SUBSCRIBED
        assert sum(bridge.stats.rejected.values()) == 100_000
        bridge.stop()
        await asyncio.wait_for(task, 10)
    lines = [r.getMessage() for r in caplog.records]
    one_by_one = [line for line in lines if line.startswith("rejected message")]
    summaries = [line for line in lines if "not logged one by one" in line]
    assert 50 <= len(one_by_one) < 1000, f"expected a throttled log, got {len(one_by_one)} lines"
    assert summaries, "expected the rejections not logged summed up"
    summed = sum(int(line.split(" ", 1)[0]) for line in summaries)
    assert summed + len(one_by_one) == 100_000, "expected every rejection logged or summed up"
    sync = redis.Redis.from_url(redis_server.url)
    letters, kept = read_dead_letters(sync, KEY, 1)
    assert kept == 1000, "expected the dead-letter list capped"
    assert letters[0].reason == "unknown_status", "expected the newest rejection first"
    for connection in (sync, publisher):
        connection.close()
    await client.aclose()


# -- /ws/stats and the admin -------------------------------------------------------------------


@pytest.fixture
def stored(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    settings.JOBUPDATES_DEAD_LETTER_SIZE = 50
    sync = redis.Redis.from_url(redis_server.url)
    sync.lpush(KEY, letter(b"{oops", at=1).to_json(), letter(b"\xff", "invalid_utf8", 2).to_json())
    yield sync
    sync.close()


def test_stats_show_the_newest_dead_letters_and_their_count(client, db, stored):
    client.force_login(User.objects.create_user("staff", password="x", is_staff=True))
    document = client.get("/ws/stats").json()
    dead = document["dead_letters"]
    assert (dead["kept"], dead["capacity"]) == (2, 50)
    assert [d["reason"] for d in dead["recent"]] == ["invalid_utf8", "invalid_json"]
    assert dead["recent"][0]["encoding"] == "base64"


def test_admin_lists_dead_letters_read_only_for_staff_only(client, db, stored):
    changelist = "/admin/jobupdates/deadletter/"
    client.force_login(User.objects.create_user("plain", password="x"))
    assert client.get(changelist).status_code == 302
    client.force_login(User.objects.create_user("staff", password="x", is_staff=True))
    page = client.get(changelist).content.decode()
    assert "invalid_utf8" in page
    assert "{oops" in page
    assert "Dead letters" in client.get("/admin/").content.decode()
    assert client.get(changelist + "add/").status_code == 403
    stored.delete(KEY)
    assert "invalid_utf8" not in client.get(changelist).content.decode()
