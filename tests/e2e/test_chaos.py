"""A 60 s chaos run (``python -m harness.chaos``, see harness/chaos/) must find nothing.

Two bridges, two servers and a persistent Redis under a seeded nemesis (bridges
and servers killed, terminated, stopped; Redis restarted with its data), two
workers at 50 updates/s (PUBLISH and durable XADD) and 40 WebSocket clients
that reconnect and resume with ``since=``. The checker holds every client to
docs/protocol.md: nothing lost that no ``reset`` owned up to, nothing twice,
each worker's updates in order, positions always growing. The run's logs stay
in the test's temporary directory (its path is printed).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.processes import ROOT

pytestmark = pytest.mark.e2e

DURATION = 60
SEED = 7


@pytest.mark.timeout(DURATION + 240)  # startup, the last heal, the 30 s drain bound, stopping
def test_a_chaos_run_loses_duplicates_reorders_and_regresses_nothing(tmp_path):
    summary_path = tmp_path / "summary.json"
    command = [
        sys.executable,
        "-m",
        "harness.chaos",
        "--duration",
        str(DURATION),
        "--seed",
        str(SEED),
        "--json",
        str(summary_path),
        "--logs",
        str(tmp_path / "run"),
    ]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=DURATION + 220, check=False
    )
    print(result.stdout)
    assert summary_path.exists(), f"the run did not finish:\n{result.stdout}\n{result.stderr}"
    summary = json.loads(summary_path.read_text())
    counts = {
        "lost": summary["lost"],
        "duplicated": summary["duplicated"],
        "reordered": summary["reordered"],
        "position_regressions": summary["position_regressions"],
    }
    assert sum(summary["faults"].values()) >= 3, "expected the nemesis to have struck"
    assert summary["deliveries"] > 0
    assert counts == dict.fromkeys(counts, 0), (
        f"expected no anomaly, got {counts} (logs in {tmp_path / 'run'}):\n{result.stdout}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
