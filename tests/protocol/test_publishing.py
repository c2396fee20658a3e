"""``manage.py publish_job_update`` against a real throwaway Redis, and its pure helpers.

A redis-py subscriber checks the exact bytes each mode PUBLISHes; a refused
update is shown to publish nothing by a sentinel that arrives first.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import example, given
from hypothesis import strategies as st

from botrix_site.redis_server import RedisServer, free_port
from harness.clients import recv_json, welcomed, ws_connect
from harness.processes import ROOT, child_env
from jobupdates.protocol import DEFAULT_STATUSES, InvalidJobUpdate, parse_job_update
from jobupdates.protocol.publishing import (
    PublishError,
    RateSummary,
    build_payload,
    parse_data,
    progress_bar,
    resolve_status,
)
from tests.conftest import CHANNEL
from tests.support.clients import without_position

STATUSES = ", ".join(DEFAULT_STATUSES)
SENTINEL = b"sentinel: published by the test after the command"


class Subscriber:
    """A redis-py subscriber on one channel that collects what is published."""

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        self.client = redis.Redis.from_url(url)
        self.channel = channel
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(channel)
        confirmation = self.pubsub.get_message(timeout=5)
        assert confirmation is not None, "expected a subscribe confirmation"
        assert confirmation["type"] == "subscribe", confirmation

    def receive(self, count: int, timeout: float = 10.0) -> list[bytes]:
        """Return the next ``count`` payloads, waiting for each as it arrives."""
        received: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(received) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"expected {count} messages, got {len(received)}: {received[:5]}"
            message = self.pubsub.get_message(timeout=left)
            if message and message["type"] == "message":
                received.append(message["data"])
        return received

    def assert_nothing_published(self) -> None:
        """Publish a sentinel and check it is the first message since the last receive."""
        self.client.publish(self.channel, SENTINEL)
        assert self.receive(1) == [SENTINEL], "expected the command to publish nothing"

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def subscriber(redis_server: RedisServer) -> Iterator[Subscriber]:
    listening = Subscriber(redis_server.url)
    yield listening
    listening.close()


def run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    """Call the command in-process; return its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    extra: dict[str, Any] = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("publish_job_update", *args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


# --- one update ----------------------------------------------------------------------------


def test_publishes_one_update_in_the_workers_exact_format(redis_server, subscriber):
    out, _ = run("completed", "my-job-123", "--data", '{"k": "v"}', "--redis-url", redis_server.url)
    expected = b'{"job_id":"my-job-123","status":"completed","data":{"k":"v"}}'
    assert subscriber.receive(1) == [expected]
    assert "received by 1 subscriber(s)" in out
    assert expected.decode() in out
    assert parse_job_update(expected).data == {"k": "v"}


def test_without_data_sends_null_and_keeps_unicode_as_is(redis_server, subscriber):
    run("failed", "tâche-é", "--redis-url", redis_server.url)
    run("processing", "j-2", "--data", '["ü", 1.5, null]', "--redis-url", redis_server.url)
    assert subscriber.receive(2) == [
        '{"job_id":"tâche-é","status":"failed","data":null}'.encode(),
        '{"job_id":"j-2","status":"processing","data":["ü",1.5,null]}'.encode(),
    ]


def test_uses_the_configured_channel_redis_and_statuses(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    settings.JOBUPDATES_CHANNEL = "custom:updates"
    settings.JOBUPDATES_STATUSES = ["started", "done"]
    custom = Subscriber(redis_server.url, "custom:updates")
    try:
        run("done", "j-1")
        assert custom.receive(1) == [b'{"job_id":"j-1","status":"done","data":null}']
        with pytest.raises(CommandError, match=r"expected one of started, done$"):
            run("completed", "j-1")
    finally:
        custom.close()


def test_channel_and_redis_url_options_override_the_settings(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = "redis://127.0.0.1:9/0"
    other = Subscriber(redis_server.url, "other:channel")
    try:
        run("queued", "j-1", "--channel", "other:channel", "--redis-url", redis_server.url)
        assert other.receive(1) == [b'{"job_id":"j-1","status":"queued","data":null}']
    finally:
        other.close()


def test_reports_zero_subscribers(redis_server):
    out, err = run("completed", "j-1", "--redis-url", redis_server.url)
    assert "received by 0 subscriber(s)" in out
    assert "is run_bridge running?" in err


# --- refusals --------------------------------------------------------------------------------


def test_unknown_status_lists_the_allowed_ones(redis_server, subscriber):
    with pytest.raises(CommandError) as refused:
        run("done", "j-1", "--redis-url", redis_server.url)
    assert str(refused.value) == f"unknown status 'done': expected one of {STATUSES}"
    subscriber.assert_nothing_published()


def test_bad_json_in_data_says_where(redis_server, subscriber):
    with pytest.raises(CommandError) as refused:
        run("completed", "j-1", "--data", '{"a": 1 "b": 2}', "--redis-url", redis_server.url)
    message = str(refused.value)
    assert message.startswith("--data is not valid JSON: Expecting ',' delimiter")
    assert "line 1, column 9 (character 8)" in message
    assert message.endswith('{"a": 1 "b": 2}\n          ^')
    subscriber.assert_nothing_published()


def test_unreachable_redis_names_the_url_without_its_password():
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(CommandError, match=r"^cannot reach Redis at redis://:\*\*\*@127\.0\.0\.1"):
        run("completed", "j-1", "--redis-url", url)


def test_unreachable_default_redis_names_the_configured_url():
    with pytest.raises(CommandError, match=r"cannot reach Redis at redis://127\.0\.0\.1:9/0"):
        run("completed", "j-1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "expected a status and a job id"),
        (("completed",), "expected a status and a job id"),
        (("completed", "j-1", "--stress"), "--stress needs --count"),
        (("completed", "j-1", "--count", "0"), "expected a whole number >= 1, got '0'"),
        (("completed", "j-1", "--interval", "-1"), "expected seconds >= 0, got '-1'"),
        (("completed", "j-1", "--interactive"), "--interactive asks for everything"),
        (("completed", "j-1", "--redis-url", "http://x"), "--redis-url: expected a URL"),
    ],
)
def test_bad_arguments_are_refused_clearly(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("completed", "x" * 256), "invalid_job_id"),
        (("completed", "   "), "missing_job_id"),
        (("completed", "j-1", "--data", '"\\ud800"'), "unencodable"),
        (("completed", "j-1", "--data", "NaN"), "NaN is not standard JSON"),
        (("completed", "j-1", "--data", "[" * 100_000 + "]" * 100_000), "recursion"),
        (("completed", "j-1", "--data", "1" * 5000), "not valid JSON"),
        (("Completed", "j-1"), "unknown status 'Completed'"),
    ],
)
def test_refuses_what_the_bridge_would_reject_and_publishes_nothing(
    redis_server, subscriber, args, reason
):
    with pytest.raises(CommandError, match=reason):
        run(*args, "--redis-url", redis_server.url)
    subscriber.assert_nothing_published()


def test_refuses_an_update_over_the_configured_size(redis_server, subscriber, settings):
    settings.JOBUPDATES_MAX_PAYLOAD_BYTES = 100
    with pytest.raises(CommandError, match=r"\(too_large\): expected at most 100 bytes"):
        run("completed", "j-1", "--data", json.dumps("x" * 100), "--redis-url", redis_server.url)
    subscriber.assert_nothing_published()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    job_id=st.text(max_size=260) | st.sampled_from(["", " ", "x" * 255, "x" * 256]),
    status=st.sampled_from([*DEFAULT_STATUSES, "done", "", "COMPLETED"]),
    data=json_values,
)
@example(job_id="j", status="completed", data="\ud800")
@example(job_id="j", status="completed", data=float("nan"))
def test_build_payload_accepts_exactly_what_the_bridge_accepts(job_id, status, data):
    worker = json.dumps({"job_id": job_id, "status": status, "data": data}).encode()
    try:
        parse_job_update(worker).to_frame()
        bridge_accepts = True
    except InvalidJobUpdate:
        bridge_accepts = False
    try:
        payload = build_payload(job_id, status, data, statuses=DEFAULT_STATUSES, max_bytes=2**20)
    except PublishError:
        assert not bridge_accepts
    else:
        assert bridge_accepts
        assert parse_job_update(payload) == parse_job_update(worker)


# --- bursts and stress -----------------------------------------------------------------------


def test_burst_publishes_count_updates_at_the_interval(redis_server, subscriber):
    started = time.monotonic()
    out, _ = run("processing", "job-{n}", "--count", "4", "--interval", "0.2", "--redis-url",
                 redis_server.url)  # fmt: skip
    elapsed = time.monotonic() - started
    assert subscriber.receive(4) == [
        f'{{"job_id":"job-{n}","status":"processing","data":null}}'.encode() for n in (1, 2, 3, 4)
    ]
    assert elapsed >= 0.6, "expected three 0.2 s intervals between four publishes"
    assert out.count("received by 1 subscriber(s)") == 4
    assert "4 messages in" in out


def test_stress_shows_progress_on_stderr_then_the_rate(redis_server, subscriber):
    data = '{"n": 1}'
    out, err = run("completed", "load", "--count", "300", "--stress", "--data", data,
                   "--redis-url", redis_server.url)  # fmt: skip
    payload = b'{"job_id":"load","status":"completed","data":{"n":1}}'
    assert subscriber.receive(300) == [payload] * 300
    assert "\r[" in err
    assert err.rstrip("\n").endswith("] 300/300 100%")
    assert "received by" not in out, "expected no line per message in a stress run"
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("300 messages in ")
    assert "messages/s; subscribers per message: 1; deliveries: 300" in summary


# --- interactive -----------------------------------------------------------------------------


def test_interactive_menu_publishes_until_quit(redis_server, subscriber):
    answers = "\n".join(
        [
            "job-a",  # job id
            "9",  # not on the menu: asked again
            "4",  # completed
            "{bad",  # bad JSON: asked again
            '{"rows": 3}',
            "job-b",
            "failed",  # a name works too
            "",  # no data
            "q",
        ]
    )
    out, err = run("--interactive", "--redis-url", redis_server.url, stdin=answers + "\n")
    assert subscriber.receive(2) == [
        b'{"job_id":"job-a","status":"completed","data":{"rows":3}}',
        b'{"job_id":"job-b","status":"failed","data":null}',
    ]
    menu = "\n".join(f"  {n}) {s}" for n, s in enumerate(DEFAULT_STATUSES, 1))
    assert menu in out
    assert out.count("received by 1 subscriber(s)") == 2
    assert out.rstrip().endswith("bye")
    assert f"unknown status '9': expected a number from 1 to 6 or one of {STATUSES}" in err
    assert "data is not valid JSON: Expecting property name" in err
    subscriber.assert_nothing_published()


def test_interactive_stops_at_end_of_input(redis_server, subscriber):
    out, _ = run("--interactive", "--redis-url", redis_server.url, stdin="job-a\n2\n")
    assert out.rstrip().endswith("bye")
    subscriber.assert_nothing_published()


# --- the real command line -------------------------------------------------------------------


def manage_py(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "publish_job_update", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.e2e
def test_command_line_publishes_and_reads_stdin(redis_server, subscriber):
    env = child_env(REDIS_URL=redis_server.url)
    done = manage_py(env, "completed", "my-job-123", "--data", '{"k":"v"}')
    assert done.returncode == 0, done.stderr
    interactive = manage_py(env, "--interactive", stdin="job-b\n1\n\nquit\n")
    assert interactive.returncode == 0, interactive.stderr
    assert subscriber.receive(2) == [
        b'{"job_id":"my-job-123","status":"completed","data":{"k":"v"}}',
        b'{"job_id":"job-b","status":"pending","data":null}',
    ]


@pytest.mark.e2e
def test_command_line_errors_exit_1_with_the_reason():
    url = f"redis://127.0.0.1:{free_port()}/0"
    unreachable = manage_py(child_env(REDIS_URL=url), "completed", "j-1")
    assert unreachable.returncode == 1
    assert f"CommandError: cannot reach Redis at {url}" in unreachable.stderr
    bad = manage_py(child_env(REDIS_URL=url), "done", "j-1")
    assert bad.returncode == 1
    assert f"CommandError: unknown status 'done': expected one of {STATUSES}" in bad.stderr


@pytest.mark.e2e
async def test_update_reaches_a_websocket_client_through_the_bridge(stack, staff_cookie):
    async with ws_connect(stack.port, staff_cookie) as ws:
        await welcomed(ws)
        done = await asyncio.to_thread(
            manage_py, stack.env, "completed", "j-1", "--data", '{"k":"v"}'
        )
        assert done.returncode == 0, done.stderr
        assert "received by 1 subscriber(s)" in done.stdout
        assert without_position(await recv_json(ws)) == {
            "type": "job_update",
            "job_id": "j-1",
            "status": "completed",
            "data": {"k": "v"},
        }


# --- pure helpers ----------------------------------------------------------------------------


def test_parse_data_points_at_the_error_on_its_line():
    text = '{\n  "a": [1, 2,]\n}'
    with pytest.raises(json.JSONDecodeError) as parsing:  # its words change (Python 3.13)
        json.loads(text)
    error = parsing.value
    with pytest.raises(PublishError) as refused:
        parse_data(text)
    where = f"at line 2, column {error.colno} (character {error.pos})"
    assert str(refused.value).startswith(f"--data is not valid JSON: {error.msg} {where}:")
    assert str(refused.value).endswith('  "a": [1, 2,]\n' + " " * (2 + error.colno - 1) + "^")
    assert parse_data(None) is None
    assert parse_data("null") is None


def test_resolve_status_takes_a_number_or_a_name():
    assert resolve_status("1", DEFAULT_STATUSES) == "pending"
    assert resolve_status(" cancelled ", DEFAULT_STATUSES) == "cancelled"
    for bad in ("0", "7", "", "Pending"):
        with pytest.raises(PublishError, match="expected a number from 1 to 6"):
            resolve_status(bad, DEFAULT_STATUSES)


def test_progress_bar_and_rate_summary():
    assert progress_bar(0, 10, width=10) == "[----------]  0/10   0%"
    assert progress_bar(5, 10, width=10) == "[#####-----]  5/10  50%"
    assert progress_bar(10, 10, width=10) == "[##########] 10/10 100%"
    summary = RateSummary(messages=4, seconds=2.0, receivers=(1, 2, 1, 0))
    assert summary.rate == 2.0
    assert summary.describe() == (
        "4 messages in 2.000 s: 2.0 messages/s; subscribers per message: 0-2; deliveries: 4"
    )
    assert RateSummary(0, 0.0, ()).describe().startswith("0 messages in 0.000 s: 0.0 messages/s")
