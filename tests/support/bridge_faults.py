"""Faults the combined-fault tests cause in real bridge processes, and what they read
back from Redis to time them: freezing a process (SIGSTOP/SIGCONT), the bridge
lease, a bridge started with a planted crash, and workers that PUBLISH numbered
updates and keep what each PUBLISH returned."""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis

from botrix_site.redis_server import RedisServer
from harness.processes import Process, child_env, start_daphne
from harness.updates import CHANNEL, job_update
from jobupdates.conf import conf
from tests.support.inbox import Key

STANDBY = r"-> subscribed: .* as a standby"
ACTIVE = r"is now the active bridge"
DEMOTED = r"is now a standby"
TAKEOVER = r"takeover: (\d+) update\(s\) buffered, (\d+) already in the history, forwarding (\d+)"
GAP = r"takeover: updates published before .* may be lost"


def logged(process: Process, pattern: str, after: int = 0) -> str:
    """The first line at index >= ``after`` that matches, or ``"(none)"``: for a test's
    printout, never waited on (the product's wording may change)."""
    regex = re.compile(pattern)
    found = [line for line in process.lines[after:] if regex.search(line)]
    return found[0].split(": ", 1)[-1] if found else "(none)"


def poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` (a read of Redis or /proc, every 10 ms) until it holds; False
    if it still does not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """:func:`poll`, failing with ``what`` at the timeout."""
    assert poll(condition, timeout), f"expected {what} within {timeout}s"


def process_state(process: Process) -> str:
    """The state letter of /proc/<pid>/stat: ``T`` once a SIGSTOP took effect."""
    with open(f"/proc/{process.popen.pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def freeze(process: Process) -> float:
    """SIGSTOP ``process``; return (time.monotonic()) once it is stopped."""
    process.signal(signal.SIGSTOP)
    wait_until(f"{process.name} stopped", lambda: process_state(process) == "T", 5)
    return time.monotonic()


def thaw(process: Process) -> float:
    """SIGCONT ``process``; return when it was sent."""
    process.signal(signal.SIGCONT)
    return time.monotonic()


def is_of(holder: str | None, process: Process) -> bool:
    """Whether a lease holder name (``host:pid:suffix``) is ``process``'s."""
    return holder is not None and f":{process.popen.pid}:" in holder


class LeaseProbe:
    """Reads the bridge lease (``JOBUPDATES_BRIDGE_LEASE_KEY``) as Redis holds it."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.key = conf.BRIDGE_LEASE_KEY

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return str(value) if value is not None else None

    def pttl(self) -> int:
        """Milliseconds left; -2 once the key is gone."""
        return int(self.client.pttl(self.key))

    def close(self) -> None:
        self.client.close()


def start_hooked_bridge(
    env: dict[str, str], *, active: bool = True, name: str = "hooked-bridge"
) -> Process:
    """Start ``run_bridge`` with :mod:`tests.support.bridge_hooks`'s crash planted,
    as :func:`harness.processes.start_bridge` starts the plain one; return once it
    is subscribed (and active, if asked)."""
    process = Process(name, [sys.executable, "-m", "tests.support.bridge_hooks"], env)
    process.wait_for(r"bridge hook: armed")
    process.wait_for(r"-> subscribed")
    if active:
        process.wait_for(ACTIVE)
    return process


@dataclass
class Daphne:
    """Redis and one Daphne, with no bridge: each test starts its own."""

    redis: RedisServer
    env: dict[str, str]
    process: Process
    port: int


@contextmanager
def daphne_only(redis_server: RedisServer, database: str, **overrides: str) -> Iterator[Daphne]:
    """The fast-path stack without a bridge (``tests.conftest._stack`` starts one)."""
    env = child_env(REDIS_URL=redis_server.url, DATABASE_URL=database, **overrides)
    process, port = start_daphne(env)
    try:
        yield Daphne(redis_server, env, process, port)
    finally:
        process.stop()


class Worker:
    """PUBLISHes numbered updates of one job as a worker does; keeps which Redis accepted.

    ``accepted`` lists, in publish order, the keys whose PUBLISH returned >= 1;
    ``receivers`` what each PUBLISH returned.
    """

    def __init__(self, url: str, job_id: str = "load") -> None:
        self.client = redis.Redis.from_url(url)
        self.job_id = job_id
        self.next = 0
        self.accepted: list[Key] = []
        self.receivers: dict[Key, int] = {}
        self._lock = threading.Lock()

    def publish(self, count: int = 1, *, job_id: str | None = None) -> list[int]:
        """PUBLISH the next ``count`` numbers (in one pipeline); return the receivers."""
        job = job_id or self.job_id
        with self._lock:
            keys = [(job, n) for n in range(self.next, self.next + count)]
            self.next += count
            with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    self.send(pipe, key)
                results = [self.receivers_of(reply) for reply in pipe.execute()]
            for key, result in zip(keys, results, strict=True):
                self.receivers[key] = result
                if result >= 1:
                    self.accepted.append(key)
        return results

    def send(self, pipe: Any, key: Key) -> None:
        """Queue one update's command on ``pipe``: a PUBLISH, as a worker does."""
        pipe.publish(CHANNEL, job_update(key[0], data={"n": key[1]}))

    @staticmethod
    def receivers_of(reply: Any) -> int:
        """How many received it, from the command's reply (PUBLISH: its count)."""
        return int(reply)

    def last(self) -> Key:
        return self.accepted[-1]

    def close(self) -> None:
        self.client.close()


class Steady(threading.Thread):
    """Drives a :class:`Worker` at ``rate`` updates a second (``batch`` at once) until
    stopped."""

    def __init__(self, worker: Worker, rate: int = 100, batch: int = 5) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.rate = rate
        self.batch = batch
        self.halt = threading.Event()
        self.error: Exception | None = None
        """What stopped the worker, if it failed."""

    def run(self) -> None:
        started = time.monotonic()
        sent = 0
        try:
            while not self.halt.is_set():
                self.worker.publish(self.batch)
                sent += self.batch
                self.halt.wait(max(0.0, started + sent / self.rate - time.monotonic()))
        except Exception as exc:  # kept for the test to report, not lost on stderr
            self.error = exc

    def finish(self) -> None:
        self.halt.set()
        self.join(10)
