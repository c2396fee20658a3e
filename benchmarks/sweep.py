"""The re-validation sweep in-process: its seconds and its queries at N connections ([16]).

``python -m benchmarks.sweep [--connections 10000] [--repeats 5] [--output FILE]``
migrates a throwaway SQLite database (``botrix_site.settings``, the ``db`` session
engine), then, for each case, gives one :class:`jobupdates.access.revocation.Authorities`
N connections, each with a real session of its own, and times
:meth:`~jobupdates.access.revocation.Authorities.sweep` on an event loop:

* ``1 user``: N sessions of one staff user (the bench's clients);
* ``N users``: N users with one session each, who may receive every job through a
  group's permission (the all-jobs permission is then queried, not decided);
* ``1 user, loop busy``: the first case while a task keeps the event loop running
  Python, as a fan-out does (:func:`time_sweeps`).

The queries of a sweep are those of :func:`jobupdates.access.revalidation.gather`,
counted with ``CaptureQueriesContext`` on a direct call (the sweep makes it in a
worker thread). Reported: queries per sweep and per 500 grants, the first sweep (the
session auth hashes are computed then, and cached) and the next ones' mean and max,
per connection, the judging's time on the loop, and the loop's longest stall while
sweeping (a task that wakes every millisecond measures it) beside the longest
garbage collection meanwhile (which stops every thread, the loop's too).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.sweep_data import create_case, setup

TICK_SECONDS = 0.001


@dataclass
class FakeConnection:
    """A connection as :class:`Authorities` sees it; it counts what it is told."""

    client_id: str
    told: int = 0

    async def revoked(self, verdict: Any) -> None:
        self.told += 1

    async def disconnected_by_staff(self, by: str) -> None:
        self.told += 1


def count_queries(grants: list[Any]) -> dict[str, Any]:
    """The queries :func:`gather` makes for ``grants``, by table; and what it found."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobupdates.access.revalidation import gather

    with CaptureQueriesContext(connection) as captured:
        facts = gather(grants)
    tables: dict[str, int] = {}
    for query in captured.captured_queries:
        table = query["sql"].split(" FROM ", 1)[1].split()[0].strip('"')
        tables[table] = tables.get(table, 0) + 1
    return {
        "queries": len(captured),
        "by_table": tables,
        "users_found": len(facts.users),
        "live_sessions_found": len(facts.sessions),
    }


def _busy_work() -> int:
    """About a tenth of a millisecond of pure Python: the loop's share of a delivery burst."""
    return sum(n * n for n in range(300))


async def time_sweeps(grants: list[Any], repeats: int, busy: bool = False) -> dict[str, Any]:
    """Sweep ``repeats + 1`` times over one connection per grant; time each, and the loop.

    With ``busy``, a task keeps the event loop running Python meanwhile (yielding at
    every step), as fanning out deliveries does: the sweep's worker thread then gets
    the GIL only when the loop thread gives it up.
    """
    from jobupdates.access.revalidation import gather
    from jobupdates.access.revocation import Authorities
    from jobupdates.protocol.authority import Action, judge

    authorities = Authorities()
    connections = [FakeConnection(f"c{n}") for n in range(len(grants))]
    for connection, grant in zip(connections, grants, strict=True):
        authorities.add(connection, grant)
    stalls: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_SECONDS)  # a heartbeat: how late it wakes is the stall
            now = time.perf_counter()
            stalls.append(now - last - TICK_SECONDS)
            last = now

    pauses: list[float] = []
    collecting: list[float] = []

    def timed_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[:] = [time.perf_counter()]
        elif collecting:
            pauses.append(time.perf_counter() - collecting[0])

    async def spin() -> None:
        while True:
            _busy_work()
            await asyncio.sleep(0)  # yield, as a fan-out between writes

    ticker = asyncio.get_running_loop().create_task(tick())
    spinner = asyncio.get_running_loop().create_task(spin()) if busy else None
    seconds, worst_stall, worst_gc, acted = [], [], [], 0
    gc.callbacks.append(timed_gc)
    try:
        for _ in range(repeats + 1):
            await asyncio.sleep(0.05)
            stalls.clear()
            pauses.clear()
            acted += await authorities.sweep()
            seconds.append(authorities.last_sweep_seconds)
            worst_stall.append(max(stalls, default=0.0))
            worst_gc.append(max(pauses, default=0.0))
    finally:
        gc.callbacks.remove(timed_gc)
    ticker.cancel()
    if spinner is not None:
        spinner.cancel()
    facts = await asyncio.to_thread(gather, grants)
    started = time.perf_counter()
    verdicts = [judge(grant, facts) for grant in grants]
    judging = time.perf_counter() - started
    kept = sum(v.action is Action.KEEP for v in verdicts)
    return {
        "held": len(authorities.entries),
        "acted": acted + sum(c.told for c in connections),
        "kept": kept,
        "first_seconds": seconds[0],
        "seconds": seconds[1:],
        "judge_seconds": judging,
        "loop_stall_seconds": worst_stall[1:],
        "gc_pause_seconds": worst_gc[1:],
    }


def run_case(
    name: str, users: int, connections: int, repeats: int, busy_repeats: int = 0
) -> list[dict[str, Any]]:
    """Create one case, count its queries, time its sweeps; return the figures, and
    those of the same sweeps on a busy loop if ``busy_repeats``."""
    started = time.monotonic()
    grants = create_case(name, users, connections)
    created = time.monotonic() - started
    queries = count_queries(grants)
    figures = []
    for label, busy, times in ((name, False, repeats), (f"{name}, loop busy", True, busy_repeats)):
        if times:
            timed = asyncio.run(time_sweeps(grants, times, busy))
            figures.append(_figures(label, users, grants, created, queries, timed))
    return figures


def _figures(
    name: str,
    users: int,
    grants: list[Any],
    created: float,
    queries: dict[str, Any],
    timed: dict[str, Any],
) -> dict[str, Any]:
    from jobupdates.access.revalidation import CHUNK

    connections = len(grants)
    steady = timed["seconds"]
    return {
        "case": name,
        "users": users,
        "connections": connections,
        "sessions": len({grant.session for grant in grants}),
        "setup_seconds": created,
        **queries,
        "queries_per_chunk": queries["queries"] / -(-connections // CHUNK),
        **timed,
        "mean_seconds": statistics.fmean(steady),
        "max_seconds": max(steady),
        "us_per_connection": statistics.fmean(steady) / connections * 1e6,
        "max_loop_stall_seconds": max(timed["loop_stall_seconds"]),
        "max_gc_pause_seconds": max(timed["gc_pause_seconds"]),
    }


def table(cases: list[dict[str, Any]]) -> str:
    """One row per case."""
    lines = [
        "| case | connections (sessions) | queries per sweep (per 500 grants) | by table"
        " | first sweep ms | sweep ms mean / max | us/connection | judging on the loop ms"
        " | loop's longest stall ms (longest GC) | all kept |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in cases:
        tables = ", ".join(f"{t} {n}" for t, n in sorted(c["by_table"].items()))
        ok = c["kept"] == c["held"] == c["connections"] and not c["acted"]
        lines.append(
            f"| {c['case']} | {c['connections']:,} ({c['sessions']:,}) | {c['queries']}"
            f" ({c['queries_per_chunk']:.1f}) | {tables} | {c['first_seconds'] * 1e3:.1f}"
            f" | {c['mean_seconds'] * 1e3:.1f} / {c['max_seconds'] * 1e3:.1f}"
            f" | {c['us_per_connection']:.2f} | {c['judge_seconds'] * 1e3:.1f}"
            f" | {c['max_loop_stall_seconds'] * 1e3:.1f} ({c['max_gc_pause_seconds'] * 1e3:.1f})"
            f" | {'yes' if ok else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run both cases; print the table; write the figures if ``--output``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="sweeps timed after the first")
    parser.add_argument(
        "--busy-repeats", type=int, default=2, help="sweeps timed on a busy loop (1 user)"
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sweep-") as directory:
        setup(Path(directory))
        n = args.connections
        cases = [
            *run_case("1 user", 1, n, args.repeats, args.busy_repeats),
            *run_case(f"{n:,} users", n, n, args.repeats),
        ]
    print(table(cases))
    if args.output:
        document = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cases": cases}
        args.output.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
