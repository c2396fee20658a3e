"""The chaos run's two workers: one PUBLISHes, one XADDs to the durable ingest stream.

Each sends ``job_update(<its name>, "processing", {"n": n})`` for n = 0, 1, 2...
at a steady rate, one attempt per n, and records when each call began and
returned and whether Redis accepted it (PUBLISH returned >= 1; XADD returned an
id). A call that fails (Redis down) is not retried: the next number follows at
its own time, at least one period later, so a Redis that refuses at once is
not hammered. The client never retries either (redis-py 8 retries by default,
which could apply one update twice).
"""

from __future__ import annotations

import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from harness.chaos.records import Update
from harness.updates import CHANNEL, STREAM, job_update

SOCKET_TIMEOUT = 1.0
"""Seconds a call may take: a Redis that does not answer costs at most this per update."""
MAX_BEHIND = 0.5
"""Seconds behind schedule (after a slow call) past which the schedule starts over
from now, rather than sending the missed updates in a burst."""


class Publisher(threading.Thread):
    """One worker: ``durable`` XADDs to the ingest stream, else PUBLISHes."""

    def __init__(self, name: str, url: str, rate: float, *, durable: bool) -> None:
        super().__init__(name=f"publisher-{name}", daemon=True)
        self.job_id = name
        self.durable = durable
        self.period = 1.0 / rate
        self.updates: list[Update] = []
        self.halt = threading.Event()
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )

    def send(self, n: int) -> bool:
        """Send update ``n`` once; return whether Redis accepted it."""
        payload = job_update(self.job_id, "processing", {"n": n})
        if self.durable:
            return bool(self.client.xadd(STREAM, {"payload": payload}))
        return int(self.client.publish(CHANNEL, payload)) >= 1

    def run(self) -> None:
        due = time.monotonic()
        n = 0
        try:
            while not self.halt.is_set():
                wait = due - time.monotonic()
                if wait > 0 and self.halt.wait(wait):
                    break
                sent = time.monotonic()
                failed = False
                try:
                    accepted = self.send(n)
                except (RedisError, OSError):
                    accepted, failed = False, True
                replied = time.monotonic()
                self.updates.append(Update(n, sent, replied, accepted))
                n += 1
                due += self.period
                if failed:
                    due = max(due, replied + self.period)
                if due < replied - MAX_BEHIND:
                    due = replied
        finally:
            self.client.close()

    def stop(self) -> None:
        """Stop sending and wait for the call in hand to return."""
        self.halt.set()
        self.join()

    @property
    def last_accepted(self) -> int | None:
        """The highest n Redis accepted, if any."""
        return next((u.n for u in reversed(self.updates) if u.accepted), None)
