"""The chaos run's nemesis: one fault at a time, each healed before the next.

After a quiet spell of 4-8 s it picks a kind uniformly, injects it, heals it,
and logs both ends; every choice comes from ``random.Random(seed)``, so a seed
replays the same sequence of faults (their timing still varies a little):

* ``bridge_kill``: SIGKILL a random bridge; 0.5-3 s later start a replacement
  (a standby);
* ``bridge_term``: SIGTERM a random bridge, wait for it to exit, start a
  replacement;
* ``bridge_stop``: SIGSTOP a random bridge for 2-8 s, then SIGCONT;
* ``server_term``: SIGTERM a random server (it drains its clients with 1012)
  and, once it exited, start it again on the same port;
* ``server_kill``: SIGKILL a random server; 0.2-2 s later start it again on
  the same port;
* ``redis_restart``: stop Redis (SIGTERM: its append-only file is written out),
  0.5-3 s later start it again on the same port and directory: its data kept
  (:meth:`RedisServer.restart`, with a pause in between).

A bridge fault is healed once two bridges run again and exactly one says it is
the active one; a Redis restart once every bridge has subscribed again, every
server's channel layer that lost its subscription has re-subscribed and one
bridge is active. A heal that
does not complete in time is logged as an error, and the run goes on.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from harness.chaos.records import Fault
from harness.chaos.stack import Stack
from harness.processes import Process

KINDS = ("bridge_kill", "bridge_term", "bridge_stop", "server_term", "server_kill", "redis_restart")
QUIET = (4.0, 8.0)
"""Seconds between the heal of a fault and the start of the next (uniform)."""
HEAL_TIMEOUT = 20.0


def clock() -> str:
    """The local clock time, as the processes' logs show it."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


@dataclass
class Step:
    """One fault in progress: its target and what happened, for the log."""

    target: str = ""
    notes: list[str] = field(default_factory=list)


class Nemesis(threading.Thread):
    """Injects faults into ``stack`` until :meth:`stop`."""

    def __init__(self, stack: Stack, seed: int) -> None:
        super().__init__(name="nemesis", daemon=True)
        self.stack = stack
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.errors = 0
        self.lines: list[str] = []
        """The nemesis's log: each fault's start and end, with clock times."""
        self.halt = threading.Event()

    def note(self, text: str) -> None:
        self.lines.append(f"{clock()} {text}")

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(*QUIET)):
            kind = self.rng.choice(KINDS)
            step = Step()
            start = time.monotonic()
            self.note(f"start {kind}")
            try:
                getattr(self, f"_{kind}")(step)
            except Exception as exc:  # a failed heal is reported, and the run goes on
                self.errors += 1
                step.notes.append(f"ERROR {type(exc).__name__}: {str(exc)[:2000]}")
            end = time.monotonic()
            notes = "; ".join(step.notes)
            self.faults.append(Fault(kind, start, end, step.target, notes))
            self.note(f"end   {kind} {step.target} after {end - start:.2f}s: {notes}")

    def stop(self) -> None:
        """Stop after healing the fault in progress (its pauses are cut short)."""
        self.halt.set()
        self.join()

    def _pause(self, low: float, high: float) -> float:
        """Sleep a random time (cut short by :meth:`stop`); return the time slept."""
        started = time.monotonic()
        self.halt.wait(self.rng.uniform(low, high))
        return time.monotonic() - started

    def _bridge(self, step: Step) -> Process:
        victim = self.rng.choice(self.stack.bridges)
        role = "active" if victim in self.stack.active_bridges() else "standby"
        step.target = f"{victim.name} ({role})"
        return victim

    def _healed_bridges(self, step: Step) -> None:
        self.stack.wait_for_one_active(HEAL_TIMEOUT)
        step.notes.append(f"active: {', '.join(p.name for p in self.stack.active_bridges())}")

    def _bridge_kill(self, step: Step) -> None:
        victim = self._bridge(step)
        victim.kill()
        self.stack.forget_bridge(victim)
        step.notes.append(f"replacement after {self._pause(0.5, 3.0):.2f}s")
        step.notes.append(f"{self.stack.start_standby().name} started")
        self._healed_bridges(step)

    def _bridge_term(self, step: Step) -> None:
        victim = self._bridge(step)
        step.notes.append(f"exit code {victim.stop(timeout=30)}")
        self.stack.forget_bridge(victim)
        step.notes.append(f"{self.stack.start_standby().name} started")
        self._healed_bridges(step)

    def _bridge_stop(self, step: Step) -> None:
        victim = self._bridge(step)
        self.stack.pause(victim)
        step.notes.append(f"stopped for {self._pause(2.0, 8.0):.2f}s")
        self.stack.resume(victim)
        self._healed_bridges(step)

    def _server(self, step: Step) -> tuple[int, Process]:
        port = self.rng.choice(self.stack.ports)
        victim = self.stack.servers[port]
        step.target = victim.name
        return port, victim

    def _server_term(self, step: Step) -> None:
        port, victim = self._server(step)
        step.notes.append(f"exit code {victim.stop(timeout=30)}")
        drained = victim.matching(r"drain: closed")
        if drained:
            step.notes.append(drained[-1].split(": ", 1)[-1])
        step.notes.append(f"{self.stack.start_server(port).name} started")

    def _server_kill(self, step: Step) -> None:
        port, victim = self._server(step)
        victim.kill()
        step.notes.append(f"restart after {self._pause(0.2, 2.0):.2f}s")
        step.notes.append(f"{self.stack.start_server(port).name} started")

    def _redis_restart(self, step: Step) -> None:
        step.target = f"redis :{self.stack.redis.port}"
        marks = self.stack.marks()
        self.stack.redis.shut_down()
        step.notes.append(f"down for {self._pause(0.5, 3.0):.2f}s")
        self.stack.redis.start()
        for process, mark in marks.items():
            if process in self.stack.bridges:
                process.wait_for(r"-> subscribed", after=mark, timeout=HEAL_TIMEOUT)
            elif process.matching(r"channel layer lost Redis", after=mark):
                # a server with no client has no subscription to lose, nor to renew
                process.wait_for(r"channel layer re-subscribed", after=mark, timeout=HEAL_TIMEOUT)
        self._healed_bridges(step)
