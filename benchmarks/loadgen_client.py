"""The harness's side of the load generator: start its processes and talk to them.

Connections are spread over several generator processes when one would hold
too many sockets (each keeps well under the 20,000 fds a process may open);
all of them run on the generator's core. Only the first one publishes.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
from typing import Any

from benchmarks.backoff import worst_case_seconds
from benchmarks.sysstats import pin

logger = logging.getLogger(__name__)

MAX_CONNECTIONS_PER_PROCESS = 8000
"""Keeps each generator process far below the 20,000 fds a process may open."""
# Handshakes in flight per generator process. Stock Channels answers HTTP 500 past
# about 100: its core layer's group_add then exhausts redis-py 8's asyncio pool,
# which raises MaxConnectionsError instead of waiting.


class GeneratorError(RuntimeError):
    """A generator process failed a command or stopped answering."""


class GeneratorProcess:
    """One ``python -m benchmarks.loadgen`` child and its reply queue."""

    def __init__(self, cpus: set[int]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        pin(self.popen.pid, cpus)
        self.replies: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.replies.put(line)
        self.replies.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def send(self, command: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(command) + "\n")
        self.popen.stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise GeneratorError(f"generator {self.pid}: no answer within {timeout}s") from None
        if line is None:
            raise GeneratorError(f"generator {self.pid} exited ({self.popen.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise GeneratorError(f"generator {self.pid}: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                self.send({"cmd": "exit"})
                self.popen.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()


class GeneratorPool:
    """Enough generator processes for ``connections``, all on ``cpus``."""

    def __init__(self, connections: int, cpus: set[int]) -> None:
        count = max(1, -(-connections // MAX_CONNECTIONS_PER_PROCESS))
        self.shares = [
            connections // count + (1 if i < connections % count else 0) for i in range(count)
        ]
        self.processes = [GeneratorProcess(cpus) for _ in range(count)]

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def all(self, command: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
        """Send ``command`` to every process at once; return their answers in order."""
        for process in self.processes:
            process.send(command)
        return [process.reply(timeout) for process in self.processes]

    def connect(
        self,
        url: str,
        origin: str,
        cookie: str,
        concurrency: int | None = 50,
        cookies: list[str] | None = None,
        timeout: float | None = None,
        busy_attempts: int = 1,
        offer: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Open every process's share of the connections; return each one's report.

        Args:
            concurrency: Handshakes in flight per process; None: all of its share at once.
            cookies: One Cookie header per connection (overrides ``cookie``).
            timeout: Seconds each connection may take for its handshake and its
                welcome (default: picows's 5 s, then 30 s).
            busy_attempts: Attempts per connection while the server refuses it
                as busy (close 4503), with ``jobupdates.js``'s backoff between
                them; 1: a busy refusal is a failure.
            offer: Handshake headers every connection sends (the target's
                :attr:`benchmarks.wire.Offer.headers`: permessage-deflate, a subprotocol).
        """
        if cookies is not None and len(cookies) < sum(self.shares):
            raise ValueError(f"expected {sum(self.shares)} cookies, got {len(cookies)}")
        options = {"handshake_timeout": timeout, "welcome_timeout": timeout} if timeout else {}
        start = 0
        for process, share in zip(self.processes, self.shares, strict=True):
            process.send(
                {
                    "cmd": "connect",
                    "url": url,
                    "origin": origin,
                    "cookie": cookie,
                    "count": share,
                    "concurrency": concurrency or share,
                    "cookies": cookies[start : start + share] if cookies else None,
                    "busy_attempts": busy_attempts,
                    "offer": offer,
                    **options,
                }
            )
            start += share
        wait = max(120.0, max(self.shares) / 50) + worst_case_seconds(
            busy_attempts, 2 * (timeout or 0)
        )
        return [process.reply(timeout=wait) for process in self.processes]

    def publish(self, timeout: float, **options: Any) -> dict[str, Any]:
        """Have the first process publish; return its report."""
        publisher = self.processes[0]
        publisher.send({"cmd": "publish", **options})
        return publisher.reply(timeout)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
