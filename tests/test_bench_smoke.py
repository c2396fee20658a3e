"""Smoke test of the fan-out benchmarks: a quick run on every target loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "picows", reason="the benchmarks need picows: pip install -r benchmarks/requirements.txt"
)
pytest.importorskip(
    "uvloop", reason="the benchmarks need uvloop: pip install -r benchmarks/requirements.txt"
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[1]
CLIENTS = 30


def test_quick_benchmark_delivers_every_update_on_every_target(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--connections",
            str(CLIENTS),
            "--throughput-seconds",
            "1",
            "--latency-messages",
            "10",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert result.returncode == 0, f"benchmark failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    targets = json.loads(output.read_text())["summary"]["targets"]
    assert set(targets) == {"project", "websockets", "stock"}
    for name, summary in targets.items():
        assert summary["expected"] > 0, f"{name}: expected deliveries to be measured"
        assert summary["delivered"] == summary["expected"], f"{name}: {summary}"
        assert summary["lost"] == 0, f"{name}: lost {summary['lost']} deliveries"
        assert summary["server_cpu_us_per_delivery"] > 0, f"{name}: {summary}"
        assert summary["all_delivered_p99_us"] is not None, f"{name}: {summary}"
    assert targets["project"]["ingest_forwarded_per_second"], targets["project"]
