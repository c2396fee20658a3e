"""The command line: run every target in interleaved rounds, then report.

``python -m benchmarks [--quick] [--connections N] [--rounds R] ...``; see
``--help`` and ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import payloads, phases, profiling, report, sessions, sweep_cost
from benchmarks.loadgen_client import GeneratorPool
from benchmarks.options import CLIENT_PHASES, FAN_OUT_PHASES, parse_args
from benchmarks.storm import storm
from benchmarks.sysstats import machine_info
from benchmarks.targets import (
    COOKIELESS,
    NOTHING,
    USER,
    VARIANT_PHASES,
    VARIANTS,
    Stack,
    prepare_database,
    start,
)
from benchmarks.wire import Offer

logger = logging.getLogger(__name__)


def run_target(
    name: str,
    round_: int,
    args: argparse.Namespace,
    database: str,
    cookies: list[str],
) -> dict[str, Any]:
    """Start target ``name``, run the chosen phases on it, stop it; return its results.

    ``cookies``: one session per client, for the clients of targets that log in. With
    ``--profile``, py-spy's raw samples are kept beside ``--output``
    (``python -m benchmarks.profiling FILE`` reads them).
    """
    pad = "x" * args.pad_bytes
    if name in VARIANTS:  # the storm and the ingest do not depend on what clients offer
        args = argparse.Namespace(**{**vars(args), "phases": [*VARIANT_PHASES & {*args.phases}]})
    logger.info("round %d: %s", round_, name)
    stack = start(name, database, {args.server_core})
    if stack.cookie and not args.shared_session:
        stack.cookies = cookies
    pool: GeneratorPool | None = None
    run: dict[str, Any] = {"target": name, "round": round_, "connections": args.connections}
    try:
        if name == "project" and "ingest" in args.phases:
            run["ingest"] = phases.ingest(
                stack, args.ingest_messages, pad, args.quiet_wait, payload=args.ingest_payload
            )
            run["ingest_durable"] = phases.ingest(
                stack,
                args.ingest_messages,
                pad,
                args.quiet_wait,
                durable=True,
                payload=args.ingest_payload,
            )
        if set(CLIENT_PHASES) & set(args.phases):
            phases.warm_up(stack, pad, args.payload)
            pool = GeneratorPool(args.connections, {args.generator_core})
        if pool is not None and set(FAN_OUT_PHASES) & set(args.phases):
            profile = args.output.with_name(f"{args.output.stem}-{name}-{round_}.pyspy")
            use_profiler = args.profile and name.startswith("project")
            run.update(fan_out_phases(stack, pool, args, pad, profile if use_profiler else None))
        if pool is not None and name in VARIANTS and "throughput" in run:
            run["same_server"] = same_server_reference(stack, pool, args, pad, run["throughput"])
        if pool is not None and "storm" in args.phases:  # last: see benchmarks.storm
            spied = args.profile and name.startswith("project")
            kept = args.output.with_name(f"{args.output.stem}-{name}-{round_}-storm.pyspy")
            run["storm"] = storm(stack, pool, cookies, args.quiet_wait, kept if spied else None)
        run["flags"] = [
            f for phase in run.values() if isinstance(phase, dict) for f in phase.get("flags", [])
        ]
        run["server_errors"], flags = _server_health(stack)
        run["flags"] += flags
    finally:
        if pool is not None:
            pool.stop()
        stack.stop()
    return run


def fan_out_phases(
    stack: Stack, pool: GeneratorPool, args: argparse.Namespace, pad: str, profile: Path | None
) -> dict[str, Any]:
    """Connect every client (idle memory), run throughput and latency, close them all;
    on project and project-nosweep, time the re-validation sweep meanwhile
    (:class:`benchmarks.sweep_cost.Watch`).

    With ``profile``, py-spy records the server there from the end of the ramp
    to the end of the latency phase.
    """
    run: dict[str, Any] = {"connect": phases.connect(stack, pool)}
    watch = None
    if stack.name in sweep_cost.SWEEPING:  # before the profiler: its window is idle
        watch = sweep_cost.Watch(stack, pool, run["connect"]["connected"], args.sweep_window)
    profiler = profiling.Profiler(stack.server.popen.pid, profile) if profile else None
    try:
        if "throughput" in args.phases:
            run["throughput"] = _throughput(stack, pool, args, pad)
        if "latency" in args.phases:
            run["latency"] = phases.fan_out(
                stack,
                pool,
                latencies=True,
                quiet_wait=args.quiet_wait,
                count=args.latency_messages,
                duration=10**6,
                window=0,
                rate=args.rate,
                pad=pad,
                payload=args.payload,
            )
        if profiler is not None:
            run["profile"] = profiler.stop()
            profiler = None
        if watch is not None:
            run["sweep"] = watch.finish()
    finally:
        if profiler is not None:
            profiler.stop()
    pool.all({"cmd": "close"}, timeout=120)
    return run


def _throughput(
    stack: Stack, pool: GeneratorPool, args: argparse.Namespace, pad: str
) -> dict[str, Any]:
    """The throughput phase on the connections open now."""
    return phases.fan_out(
        stack,
        pool,
        latencies=False,
        quiet_wait=args.quiet_wait,
        count=10**7,
        duration=args.throughput_seconds,
        window=args.window,
        rate=0,
        pad=pad,
        payload=args.payload,
    )


def same_server_reference(
    stack: Stack, pool: GeneratorPool, args: argparse.Namespace, pad: str, first: dict[str, Any]
) -> dict[str, Any]:
    """A variant's throughput against plain clients' on the same server, A/B/A.

    After the variant's own phases (A: its clients, ``first``: its throughput
    phase), the same number of clients that offer nothing connect and run the
    throughput phase (B), then the variant's clients again (A'). CPU ratio =
    mean(A, A') / B: the two sides are seconds apart in one process, so the
    machine's load, which moves between the rounds of a shared machine,
    weighs on both, and a linear drift over the three blocks cancels. Bytes
    ratio = A / B.
    """
    blocks: dict[str, Any] = {}
    for label, offer, agreed in (
        ("plain", Offer(), NOTHING),
        ("again", stack.offer, stack.agreed),
    ):
        blocks[label] = {"connect": phases.connect(stack, pool, offer, agreed)}
        blocks[label]["throughput"] = _throughput(stack, pool, args, pad)
        pool.all({"cmd": "close"}, timeout=120)
    plain, again = blocks["plain"]["throughput"], blocks["again"]["throughput"]
    cpu = [t["server_cpu_us_per_delivery"] for t in (first, plain, again)]
    wire = [t["wire_bytes_per_delivery"] for t in (first, plain)]
    return {
        "blocks": blocks,
        "server_cpu_us_per_delivery": cpu,
        "cpu_ratio": (cpu[0] + cpu[2]) / 2 / cpu[1] if None not in cpu and cpu[1] else None,
        "wire_ratio": wire[0] / wire[1] if None not in wire and wire[1] else None,
        "flags": [f for b in blocks.values() for phase in b.values() for f in phase["flags"]],
    }


def _server_health(stack: Stack) -> tuple[list[str], list[str]]:
    """Return the last error lines of the server's logs, and flags for them and crashes."""
    crashed = [p.name for p in (stack.server, stack.bridge) if p is not None and not p.running]
    errors = [
        f"{process.name}: {line}"
        for process in (stack.server, stack.bridge)
        if process is not None
        for line in process.matching(r"ERROR|Error:|Exception")
    ]
    flags = [f"{process} exited during the run" for process in crashed]
    flags += [f"{len(errors)} error lines in server logs"] if errors else []
    return errors[-10:], flags


def client_cookies(args: argparse.Namespace, database: str) -> list[str]:
    """Create one session per client if a target that logs in has clients: its storm
    and (unless ``--shared-session``) its fan-out clients send them."""
    fan_out = set(FAN_OUT_PHASES) & set(args.phases) and not args.shared_session
    if not (fan_out or "storm" in args.phases) or set(args.targets) <= COOKIELESS:
        return []
    return sessions.create(database, USER[0], args.connections)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks, write the JSON results, print the table."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if len(os.sched_getaffinity(0)) < 2 or args.server_core == args.generator_core:
        logger.warning("server and generator share a core: CPU figures are not comparable")
    os.sched_setaffinity(0, {args.generator_core})  # the harness is client side
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        database = prepare_database(Path(directory))
        cookies = client_cookies(args, database)
        for round_ in range(1, args.rounds + 1):
            shift = (round_ - 1) % len(args.targets)
            for name in args.targets[shift:] + args.targets[:shift]:  # interleaved A/B order
                runs.append(run_target(name, round_, args, database, cookies))
    results = {
        "machine": machine_info(),
        "payload": payloads.sizes(args.payload, "x" * args.pad_bytes),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.monotonic() - started,
        "runs": runs,
        "summary": report.summarize(runs, args.connections),
    }
    report.write(results, args.output)
    print(report.table(results))
    print(f"\nresults: {args.output}")
