"""One chaos run, start to end: the stack, the clients, the workload, the nemesis, the check.

1. Start the stack (:mod:`harness.chaos.stack`) and the logical clients; wait
   until each was welcomed once (at most :data:`WELCOME_TIMEOUT`).
2. Start the two publishers and the nemesis; let them run ``duration`` seconds.
3. Stop the nemesis (healing the fault in progress), then the publishers.
4. Wait until every client has received the last accepted update of each
   publisher, at most :data:`DRAIN_TIMEOUT`; close the clients, stop every process.
5. Write the run directory: every process's output (``bridge-N.log``,
   ``server-<port>-N.log``, ``redis.log``), ``nemesis.log``, ``clients.jsonl``
   (each client's connections), ``frames.tsv.gz`` (every message each client read),
   ``anomalies.jsonl`` (every broken rule),
   ``summary.txt`` and ``summary.json``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.chaos.checker import check
from harness.chaos.clients import Clients
from harness.chaos.nemesis import Nemesis
from harness.chaos.publishers import Publisher
from harness.chaos.records import ClientLog, Fault, Update
from harness.chaos.report import RunInfo, anomaly_record, summary, table
from harness.chaos.stack import Stack
from harness.processes import ROOT

WELCOME_TIMEOUT = 30.0
"""Seconds the clients get to be welcomed once before the workload starts."""
DRAIN_TIMEOUT = 30.0
"""Seconds the clients get, at the end, to receive each publisher's last accepted update."""
PROGRESS_EVERY = 10.0


@dataclass(frozen=True)
class Options:
    duration: float
    seed: int
    clients: int = 40
    rate: float = 50.0
    json_path: Path | None = None
    logs: Path | None = None
    """The run directory; ``chaos-runs/<seed>-<timestamp>/`` if None."""


@dataclass
class Outcome:
    """What the run recorded, for the checker."""

    origin: float
    wall_origin: float
    publishers: dict[str, list[Update]] = field(default_factory=dict)
    clients: list[ClientLog] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    stopped: float = 0.0
    nemesis_errors: int = 0
    nemesis_log: list[str] = field(default_factory=list)
    drained: bool = False


def progress(text: str) -> None:
    print(f"chaos: {text}", file=sys.stderr, flush=True)


def run(options: Options) -> dict[str, Any]:
    """Run once; write the run directory; return the summary (see :func:`summary`)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = options.logs or ROOT / "chaos-runs" / f"{options.seed}-{stamp}"
    directory.mkdir(parents=True, exist_ok=True)
    progress(f"seed {options.seed}, {options.duration:g} s; run directory {directory}")
    with tempfile.TemporaryDirectory(prefix="chaos-") as scratch:
        stack = Stack(Path(scratch), options.clients)
        outcome: Outcome | None = None
        try:
            stack.start()
            progress(f"stack up: servers on {stack.ports}, Redis on {stack.redis.port}")
            outcome = asyncio.run(_drive(stack, options))
        finally:
            stack.stop()
            stack.write_logs(directory)
            if outcome is not None:
                _write_records(directory, outcome)
    assert outcome is not None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    progress(f"this process (clients, publishers, nemesis) used {usage.ru_utime:.1f} s user CPU")
    report = check(outcome.publishers, outcome.clients, outcome.faults, outcome.stopped)
    info = RunInfo(
        seed=options.seed,
        duration=options.duration,
        clients=options.clients,
        rate=options.rate,
        run_directory=str(directory),
        nemesis_errors=outcome.nemesis_errors,
        drained=outcome.drained,
        origin=outcome.origin,
        wall_origin=outcome.wall_origin,
    )
    data = summary(info, report)
    text = table(data)
    with (directory / "anomalies.jsonl").open("w") as out:
        for anomaly in report.anomalies:
            out.write(json.dumps(anomaly_record(info, anomaly)) + "\n")
    (directory / "summary.txt").write_text(text + "\n")
    (directory / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(data, indent=2) + "\n")
    print(text, flush=True)
    return data


async def _drive(stack: Stack, options: Options) -> Outcome:
    clients = Clients(options.clients, stack.cookie, stack.ports, options.seed)
    publishers = [
        Publisher("pub", stack.redis.url, options.rate, durable=False),
        Publisher("xadd", stack.redis.url, options.rate, durable=True),
    ]
    nemesis = Nemesis(stack, options.seed)
    clients.start()
    try:
        if not await clients.welcomed(WELCOME_TIMEOUT):
            progress(f"not every client was welcomed within {WELCOME_TIMEOUT:g} s; going on")
        outcome = Outcome(origin=time.monotonic(), wall_origin=time.time())
        for publisher in publishers:
            publisher.start()
        nemesis.start()
        progress(f"{options.clients} clients connected; publishing; nemesis started")
        end = outcome.origin + options.duration
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, PROGRESS_EVERY))
            deliveries = sum(len(log) for log in clients.logs)
            faults = ", ".join(f.kind for f in nemesis.faults[-3:])
            progress(
                f"{time.monotonic() - outcome.origin:.0f} s: {len(nemesis.faults)} faults"
                f" (last: {faults or '-'}), {deliveries} messages received"
            )
        await asyncio.to_thread(nemesis.stop)
        for publisher in publishers:
            await asyncio.to_thread(publisher.stop)
        outcome.stopped = time.monotonic()
        targets = {p.job_id: n for p in publishers if (n := p.last_accepted) is not None}
        progress(f"nemesis and publishers stopped; waiting for the last updates {targets}")
        outcome.drained = await clients.reached(targets, DRAIN_TIMEOUT)
        progress("drained" if outcome.drained else f"not drained within {DRAIN_TIMEOUT:g} s")
    finally:
        nemesis.halt.set()
        for publisher in publishers:
            publisher.halt.set()
        await clients.stop()
        if nemesis.is_alive():  # interrupted: let it heal before the stack stops
            await asyncio.to_thread(nemesis.join, 60)
    outcome.publishers = {p.job_id: p.updates for p in publishers}
    outcome.clients = clients.logs
    outcome.faults = list(nemesis.faults)
    outcome.nemesis_errors = nemesis.errors
    outcome.nemesis_log = list(nemesis.lines)
    return outcome


def _write_records(directory: Path, outcome: Outcome) -> None:
    origin = outcome.origin

    def relative(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 3)

    (directory / "nemesis.log").write_text("\n".join([*outcome.nemesis_log, ""]))
    with (directory / "clients.jsonl").open("w") as out:
        for log in outcome.clients:
            connections = []
            for connection in log.connections:
                record = asdict(connection)
                for key in ("started", "opened", "welcomed", "closed"):
                    record[key] = relative(record[key])
                connections.append(record)
            out.write(json.dumps({"client": log.name, "connections": connections}) + "\n")
    with gzip.open(directory / "frames.tsv.gz", "wt", compresslevel=1) as frames:
        frames.write("client\tt\tconn\tkind\tpublisher\tn\tposition\tdetail\n")
        for log in outcome.clients:
            for f in log.frames():
                at = f"{f.position[0]}-{f.position[1]}" if f.position else ""
                frames.write(
                    f"{log.name}\t{f.t - origin:.3f}\t{f.conn}\t{f.kind}\t{f.publisher or ''}"
                    f"\t{'' if f.n is None else f.n}\t{at}\t{f.detail or ''}\n"
                )
