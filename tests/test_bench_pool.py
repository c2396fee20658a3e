"""benchmarks/pool.py: several result files summarized as one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.pool import pool

ROOT = Path(__file__).resolve().parents[1]


def result(connections: int, cpus: list[float]) -> dict[str, Any]:
    runs = [
        {
            "target": "project",
            "round": n,
            "flags": [],
            "throughput": {
                "expected": 10,
                "delivered": 10,
                "lost": 0,
                "duplicates": 0,
                "server_cpu_us_per_delivery": cpu,
            },
        }
        for n, cpu in enumerate(cpus, 1)
    ]
    return {"config": {"connections": connections}, "runs": runs}


def test_rounds_of_every_file_count_as_one_run():
    pooled = pool([result(1000, [1.0, 2.0]), result(1000, [9.0, 10.0, 11.0])])
    assert [run["round"] for run in pooled["runs"]] == [1, 2, 3, 4, 5]
    project = pooled["summary"]["targets"]["project"]
    assert project["server_cpu_us_per_delivery"] == 9.0, "expected the median of all 5 rounds"
    assert project["rounds"] == 5
    assert project["expected"] == 50


def test_files_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match=r"expected one number of connections, got \[50, 1000\]"):
        pool([result(1000, [1.0]), result(50, [1.0])])


def test_the_command_prints_the_pooled_table(tmp_path: Path):
    files = []
    for n, cpus in enumerate(([1.0, 2.0], [3.0])):
        files.append(tmp_path / f"r{n}.json")
        files[-1].write_text(json.dumps(result(1000, cpus)))
    printed = subprocess.run(
        [sys.executable, "-m", "benchmarks.pool", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.startswith("3 runs from 2 files\n")
    assert "| server CPU us/delivery | 2.0 |" in printed
