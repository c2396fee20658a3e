"""The command line's options, and the defaults that depend on them (``--quick``,
``--connections`` from :data:`LARGE` up).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import payloads
from benchmarks.targets import DEFAULT_TARGETS, TARGETS

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
FAN_OUT_PHASES = ("idle", "throughput", "latency")
CLIENT_PHASES = (*FAN_OUT_PHASES, "storm")
PHASES = ("ingest", *CLIENT_PHASES)
LARGE = 5000
"""From this many connections, the defaults switch to the idle-memory case."""
DESCRIPTION = "The command line: run every target in interleaved rounds, then report."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
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
    parser.add_argument(
        "--sweep-window",
        type=float,
        help="seconds of idle connections in which project and project-nosweep's re-validation"
        " sweeps are timed one by one, after the ramp (default 10; 3 if --quick; 0: none)",
    )
    parser.add_argument(
        "--shared-session",
        action="store_true",
        help="every fan-out client sends the harness's login, not a session of its own",
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
    args.sweep_window = args.sweep_window if args.sweep_window is not None else (3 if quick else 10)
    args.ingest_messages = args.ingest_messages or (2000 if quick else 20_000)
    unknown = set(args.targets) - set(TARGETS) | set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown target or phase: {', '.join(sorted(unknown))}")
    return args
