"""``python -m harness.chaos --duration SECONDS --seed N [--clients 40] [--rate 50] [--json PATH]``

A Jepsen-style run (see :mod:`harness.chaos`): exit status 0 only if no client
lost, got twice or out of order an update, or saw a position go back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.chaos.run import Options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.chaos",
        description="A randomized fault run against the real processes; stops by itself.",
    )
    parser.add_argument("--duration", type=float, required=True, help="seconds of faults")
    parser.add_argument("--seed", type=int, required=True, help="the nemesis's and clients' seed")
    parser.add_argument("--clients", type=int, default=40, help="logical WebSocket clients")
    parser.add_argument("--rate", type=float, default=50.0, help="updates/s per publisher")
    parser.add_argument("--json", type=Path, dest="json_path", help="write the summary here too")
    parser.add_argument(
        "--logs", type=Path, help="the run directory (default: chaos-runs/<seed>-<timestamp>/)"
    )
    args = parser.parse_args(argv)
    options = Options(
        duration=args.duration,
        seed=args.seed,
        clients=args.clients,
        rate=args.rate,
        json_path=args.json_path,
        logs=args.logs,
    )
    return 0 if run(options)["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
