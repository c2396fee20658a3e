"""``manage.py publish_job_update``: publish job updates as a worker does.

For operators and testing::

    manage.py publish_job_update completed my-job-123 --data '{"rows": 10}'
    manage.py publish_job_update processing 'job-{n}' --count 5 --interval 1
    manage.py publish_job_update completed load-test --count 10000 --stress
    manage.py publish_job_update --interactive

The payload logic lives in :mod:`jobupdates.protocol.publishing`; this module only
parses arguments, talks to Redis and prints.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobupdates import redis_client
from jobupdates.conf import conf, redis_url_problem
from jobupdates.ingest.publish import send_payload
from jobupdates.protocol.publishing import (
    SEQUENCE_PLACEHOLDER,
    PublishError,
    RateSummary,
    build_payload,
    job_id_for,
    parse_data,
    progress_bar,
    resolve_status,
    status_menu,
)
from jobupdates.redis_url import redact_url

QUIT_ANSWERS = frozenset({"q", "quit", "exit"})

T = TypeVar("T")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


class Publisher:
    """PUBLISHes payloads on one channel; turns Redis failures into CommandError."""

    def __init__(
        self, url: str, channel: str, *, stream: str | None = None, stream_size: int = 1
    ) -> None:
        """With ``stream``, XADDs to that durable ingest stream instead of PUBLISHing."""
        self.url = url
        self.channel = channel
        self.stream = stream
        self.stream_size = stream_size
        self.client = redis_client.sync_client(redis_client.Use.INTERACTIVE, url)
        self._call(self.client.ping)

    def _call(self, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except (redis.RedisError, OSError) as exc:
            raise CommandError(
                f"cannot reach Redis at {redact_url(self.url)}: {type(exc).__name__}: {exc}"
            ) from None

    def publish(self, payload: bytes) -> int:
        """PUBLISH (or XADD) one payload; return how many subscribers received it
        (1 for an XADD: the stream keeps it for the bridge)."""
        if self.stream is None:
            publish = functools.partial(send_payload, channel=self.channel)
            return int(self._call(publish, self.client, payload))
        durable = functools.partial(
            send_payload,
            durable=True,
            stream=self.stream,
            stream_size=self.stream_size,
        )
        self._call(durable, self.client, payload)
        return 1

    def close(self) -> None:
        self.client.close()


class Command(BaseCommand):
    help = (
        "Publish job updates on the Redis channel the bridge subscribes to, in the workers' "
        "exact format: one, a burst (--count/--interval), a stress run (--stress) or "
        "interactively (--interactive)."
    )
    requires_system_checks: list[str] = []  # only Redis is needed, not the channel layer
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("status", nargs="?", help="The job's status, e.g. completed.")
        parser.add_argument(
            "job_id",
            nargs="?",
            help=f"The job's id; in a burst, {SEQUENCE_PLACEHOLDER} becomes 1, 2, 3...",
        )
        parser.add_argument("--data", help="JSON attached to the update (default: null).")
        parser.add_argument(
            "--interactive",
            action="store_true",
            help="Ask for job id, status and data until you answer q (or end the input).",
        )
        parser.add_argument(
            "--count", type=_positive_int, help="Publish this many times (default: 1)."
        )
        parser.add_argument(
            "--interval",
            type=_seconds,
            default=0.0,
            help="Seconds between two publishes of a burst (default: 0).",
        )
        parser.add_argument(
            "--stress",
            action="store_true",
            help="With --count: show a progress bar, then the rate achieved.",
        )
        parser.add_argument("--channel", help="Redis channel (default: JOBUPDATES_CHANNEL).")
        parser.add_argument(
            "--durable",
            action="store_true",
            help="XADD to the durable ingest stream (JOBUPDATES_INGEST_STREAM) instead of "
            "PUBLISHing: kept until a bridge forwards it.",
        )
        parser.add_argument(
            "--redis-url", help="Redis to publish on (default: JOBUPDATES_REDIS_URL)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            statuses = conf.STATUSES
            max_bytes = conf.MAX_PAYLOAD_BYTES
            channel: str = options["channel"] or conf.CHANNEL
            stream = conf.INGEST_STREAM if options.get("durable") else None
            stream_size = conf.INGEST_STREAM_SIZE
            url: str = options["redis_url"] or conf.REDIS_URL
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        problem = redis_url_problem(url)
        if problem:
            raise CommandError(f"--redis-url: {problem}")
        if options["interactive"]:
            if options["status"] or options["job_id"] or options["count"] or options["stress"]:
                raise CommandError(
                    "--interactive asks for everything: give no status, job id, --count or --stress"
                )
            publisher = Publisher(url, channel, stream=stream, stream_size=stream_size)
            try:
                self._interactive(publisher, statuses, max_bytes, options.get("stdin") or sys.stdin)
            finally:
                publisher.close()
            return
        if not options["status"] or not options["job_id"]:
            raise CommandError(
                "expected a status and a job id, e.g. `publish_job_update completed my-job-123`, "
                "or --interactive"
            )
        if options["stress"] and not options["count"]:
            raise CommandError("--stress needs --count, e.g. --count 1000 --stress")
        count: int = options["count"] or 1
        template: str = options["job_id"]
        try:
            data = parse_data(options["data"])
            payload = build_payload(
                job_id_for(template, count),
                options["status"],
                data,
                statuses=statuses,
                max_bytes=max_bytes,
            )
        except PublishError as exc:
            raise CommandError(str(exc)) from None
        if SEQUENCE_PLACEHOLDER in template:

            def payload_of(number: int) -> bytes:
                job_id = job_id_for(template, number)
                return build_payload(
                    job_id, options["status"], data, statuses=statuses, max_bytes=max_bytes
                )
        else:

            def payload_of(number: int) -> bytes:
                return payload

        publisher = Publisher(url, channel, stream=stream, stream_size=stream_size)
        try:
            self._burst(publisher, payload_of, count, options["interval"], options["stress"])
        finally:
            publisher.close()

    def _report(self, publisher: Publisher, payload: bytes, receivers: int) -> None:
        if publisher.stream is not None:
            self.stdout.write(f"added {payload.decode()} to {publisher.stream!r}")
            return
        self.stdout.write(
            f"published {payload.decode()} on {publisher.channel!r}: "
            f"received by {receivers} subscriber(s)"
        )
        if receivers == 0:
            self.stderr.write("warning: no subscriber received it; is run_bridge running?")

    def _burst(
        self,
        publisher: Publisher,
        payload_of: Callable[[int], bytes],
        count: int,
        interval: float,
        stress: bool,
    ) -> None:
        receivers: list[int] = []
        shown = -1
        started = time.monotonic()
        try:
            for number in range(1, count + 1):
                due = started + (number - 1) * interval
                if number > 1 and due > time.monotonic():
                    time.sleep(due - time.monotonic())
                payload = payload_of(number)
                receivers.append(publisher.publish(payload))
                if not stress:
                    self._report(publisher, payload, receivers[-1])
                elif number * 100 // count != shown or number == count:
                    shown = number * 100 // count
                    self._progress(progress_bar(number, count))
        except KeyboardInterrupt:
            raise CommandError(f"interrupted after {len(receivers)} of {count} messages") from None
        finally:
            if stress:
                self.stderr.write("", style_func=str)
        summary = RateSummary(len(receivers), time.monotonic() - started, tuple(receivers))
        if stress or count > 1:
            self.stdout.write(summary.describe())

    def _progress(self, bar: str) -> None:
        self.stderr.write("\r" + bar, ending="", style_func=str)
        self.stderr.flush()

    def _ask(self, stdin: TextIO, prompt: str) -> str | None:
        self.stdout.write(prompt, ending="")
        self.stdout.flush()
        line = stdin.readline()
        if not line:
            self.stdout.write("")
            return None
        return line.strip()

    def _interactive(
        self, publisher: Publisher, statuses: tuple[str, ...], max_bytes: int, stdin: TextIO
    ) -> None:
        self.stdout.write(f"Publishing on {publisher.channel!r} at {redact_url(publisher.url)}")
        self.stdout.write(status_menu(statuses))
        while True:
            job_id = self._ask(stdin, "Job id (q to quit): ")
            if job_id is None or job_id.lower() in QUIT_ANSWERS:
                break
            if not job_id:
                self.stderr.write("expected a job id, got nothing")
                continue
            status = self._ask_until(
                stdin,
                f"Status (1-{len(statuses)} or a name): ",
                lambda answer: resolve_status(answer, statuses),
            )
            if status is None:
                break
            data = self._ask_until(stdin, "Data (JSON, empty for none): ", _data_answer)
            if data is None:
                break
            try:
                payload = build_payload(
                    job_id, status, data[0], statuses=statuses, max_bytes=max_bytes
                )
            except PublishError as exc:
                self.stderr.write(str(exc))
                continue
            self._report(publisher, payload, publisher.publish(payload))
        self.stdout.write("bye")

    def _ask_until(self, stdin: TextIO, prompt: str, parse: Callable[[str], T]) -> T | None:
        """Ask until ``parse`` accepts the answer; ``None`` at the end of input."""
        while True:
            answer = self._ask(stdin, prompt)
            if answer is None:
                return None
            try:
                return parse(answer)
            except PublishError as exc:
                self.stderr.write(str(exc))


def _data_answer(answer: str) -> tuple[Any]:
    """Parse an interactive data answer; wrapped so that JSON ``null`` is not end of input."""
    return (parse_data(answer or None, label="data"),)
