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

from benchmarks import payloads, phases, profiling, report, sessions
from benchmarks.loadgen_client import GeneratorPool
from benchmarks.storm import storm
from benchmarks.sysstats import machine_info
from benchmarks.targets import (
    COOKIELESS,
    DEFAULT_TARGETS,
    NOTHING,
    TARGETS,
    USER,
    VARIANT_PHASES,
    VARIANTS,
    Stack,
    prepare_database,
    start,
)
from benchmarks.wire import Offer

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
FAN_OUT_PHASES = ("idle", "throughput", "latency")
CLIENT_PHASES = (*FAN_OUT_PHASES, "storm")
PHASES = ("ingest", *CLIENT_PHASES)
LARGE = 5000
"""From this many connections, the defaults switch to the idle-memory case."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 clients, 1 short round")
    parser.add_argument("--connections", type=int, help="clients per target (default 1000)")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds (default 3; 1 if --quick or large)"
    )
    parser.add_argument("--targets", help=f"comma-separated, of {','.join(TARGETS)}")
    parser.add_argument("--phases", help=f"comma-separated, of {','.join(PHASES)}")
    parser.add_argument("--throughput-seconds", type=float, help="publishing time (default 5)")
    parser.add_argument("--window", type=int, default=10, help="updates in flight when publishing")
    parser.add_argument("--latency-messages", type=int, help="updates at --rate (default 100)")
    parser.add_argument("--rate", type=float, default=10.0, help="latency phase updates/s")
    parser.add_argument("--ingest-messages", type=int, help="bridge ingest burst (default 20000)")
    parser.add_argument(
        "--payload",
        choices=payloads.KINDS,
        default="typical",
        help="updates published to clients: typical job updates (default), or the filler of"
        " earlier runs",
    )
    parser.add_argument(
        "--ingest-payload",
        choices=payloads.KINDS,
        default="pad",
        help="updates of the bridge ingest phase (default pad: what its 10,000 msg/s goal"
        " was set on)",
    )
    parser.add_argument(
        "--pad-bytes", type=int, default=100, help="filler in each update's data (--payload pad)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        help="seconds to wait for a quiet machine per phase (20; 0 if --quick)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record the server with py-spy during throughput and latency; report module shares",
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--generator-core", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    quick, large = args.quick, (args.connections or 0) >= LARGE
    args.connections = args.connections or (50 if quick else 1000)
    args.rounds = args.rounds or (1 if quick or large else 3)
    args.targets = (
        args.targets or ("project,websockets" if large else ",".join(DEFAULT_TARGETS))
    ).split(",")
    args.phases = (args.phases or ("idle,throughput" if large else ",".join(PHASES))).split(",")
    args.throughput_seconds = args.throughput_seconds or (1.5 if quick else 5.0)
    args.latency_messages = args.latency_messages or (20 if quick else 100)
    args.quiet_wait = args.quiet_wait if args.quiet_wait is not None else (0.0 if quick else 20.0)
    args.ingest_messages = args.ingest_messages or (2000 if quick else 20_000)
    unknown = set(args.targets) - set(TARGETS) | set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown target or phase: {', '.join(sorted(unknown))}")
    return args


def run_target(
    name: str,
    round_: int,
    args: argparse.Namespace,
    database: str,
    cookies: list[str],
) -> dict[str, Any]:
    """Start target ``name``, run the chosen phases on it, stop it; return its results.

    ``cookies``: one session per client, for the storm on targets that log in. With
    ``--profile``, py-spy's raw samples are kept beside ``--output``
    (``python -m benchmarks.profiling FILE`` reads them).
    """
    pad = "x" * args.pad_bytes
    if name in VARIANTS:  # the storm and the ingest do not depend on what clients offer
        args = argparse.Namespace(**{**vars(args), "phases": [*VARIANT_PHASES & {*args.phases}]})
    logger.info("round %d: %s", round_, name)
    stack = start(name, database, {args.server_core})
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
    """Connect every client (idle memory), run throughput and latency, close them all.

    With ``profile``, py-spy records the server there from the end of the ramp
    to the end of the latency phase.
    """
    run: dict[str, Any] = {"connect": phases.connect(stack, pool)}
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


def storm_cookies(args: argparse.Namespace, database: str) -> list[str]:
    """Create one session per client if the storm runs on a target that logs in."""
    if "storm" not in args.phases or set(args.targets) <= COOKIELESS:
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
        cookies = storm_cookies(args, database)
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
