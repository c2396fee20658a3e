"""Pool the rounds of several result files into one table.

``python -m benchmarks.pool RESULTS.json [RESULTS.json ...]`` prints the
medians over every round of every file, as if one run had made them all. Runs
of the same code on different occasions narrow the noise that one run's
rounds share (the machine's state that day); the files must come from the
same number of connections.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import report

__all__ = ["main", "pool"]


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one result document holding every run of ``results``, summarized anew.

    Raises:
        ValueError: If the files measured different numbers of connections.
    """
    connections = {r["config"]["connections"] for r in results}
    if len(connections) != 1:
        raise ValueError(f"expected one number of connections, got {sorted(connections)}")
    runs = []
    offset = 0
    for result in results:
        rounds = max((run["round"] for run in result["runs"]), default=0)
        runs += [{**run, "round": run["round"] + offset} for run in result["runs"]]
        offset += rounds
    (count,) = connections
    return {"runs": runs, "summary": report.summarize(runs, count)}


def main(argv: list[str] | None = None) -> None:
    """Print the pooled table of the given result files."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pool", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        pooled = pool([json.loads(path.read_text()) for path in args.files])
    except ValueError as exc:
        parser.error(str(exc))
    print(f"{len(pooled['runs'])} runs from {len(args.files)} files")
    print(report.table(pooled))


if __name__ == "__main__":
    main()
