"""Smoke test of the fan-out benchmarks: a quick run on every target loses nothing,
the connect storm welcomes every client on the plain-Daphne target too, and the
project's clients that offer permessage-deflate or msgpack get it, with their
bytes and CPU per delivery measured against the project's plain clients."""

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
STORM_CLIENTS = 10


def run_module(module: str, *options: str) -> str:
    """Run ``python -m MODULE *options`` from the repository; return its output."""
    result = subprocess.run(
        [sys.executable, "-m", module, *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def run_benchmarks(output: Path, *options: str) -> str:
    """Run ``python -m benchmarks --quick --output OUTPUT *options``; return the table."""
    return run_module("benchmarks", "--quick", "--output", str(output), *options)


def row(table: str, label: str) -> list[str]:
    """Return the cells of the table's first row named ``label``."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == label:
            return cells[1:]
    raise AssertionError(f"expected a row {label!r} in:\n{table}")


def test_quick_benchmark_delivers_every_update_on_every_target(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    run_benchmarks(
        output,
        "--connections",
        str(CLIENTS),
        "--targets",
        "project,websockets,stock",  # the compression variants: the test below
        "--throughput-seconds",
        "1",
        "--latency-messages",
        "10",
    )
    targets = json.loads(output.read_text())["summary"]["targets"]
    assert set(targets) == {"project", "websockets", "stock"}
    for name, summary in targets.items():
        assert summary["expected"] > 0, f"{name}: expected deliveries to be measured"
        assert summary["delivered"] == summary["expected"], f"{name}: {summary}"
        assert summary["lost"] == 0, f"{name}: lost {summary['lost']} deliveries"
        assert summary["server_cpu_us_per_delivery"] > 0, f"{name}: {summary}"
        assert summary["all_delivered_p99_us"] is not None, f"{name}: {summary}"
    assert targets["project"]["ingest_forwarded_per_second"], targets["project"]
    for name, summary in targets.items():
        assert (summary["storm_failed"], summary["storm_clients"]) == (0, CLIENTS), name


def test_storm_welcomes_every_client_on_every_kind_of_target(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    table = run_benchmarks(
        output,
        "--connections",
        str(STORM_CLIENTS),
        "--targets",
        "project,websockets,daphne",
        "--phases",
        "storm,idle",
    )
    results = json.loads(output.read_text())
    for run in results["runs"]:
        storm = run["storm"]
        assert storm["welcomed"] == STORM_CLIENTS, f"{run['target']}: {storm}"
        assert storm["failed"] == 0, f"{run['target']}: {storm}"
        assert storm["closed"] == STORM_CLIENTS, f"{run['target']}: {storm}"
        assert storm["welcomed_first_attempt"] + storm["refused_busy"] == STORM_CLIENTS, storm
        assert storm["retries"] >= storm["refused_busy"], f"{run['target']}: {storm}"
        assert run["connect"]["connected"] == STORM_CLIENTS, f"{run['target']}: {run['connect']}"
        assert run["server_errors"] == [], f"{run['target']}: {run['server_errors']}"
    assert row(table, "metric (median of rounds)") == ["project", "websockets", "daphne"]
    for label in ("storm handshakes/s", "storm s until all welcomed", "idle KB/connection"):
        assert "-" not in row(table, label), f"expected a figure per target in {label!r}"
    assert row(table, "storm failed / clients") == [f"0 / {STORM_CLIENTS}"] * 3
    for label in ("storm welcomed at the first attempt", "storm retries after busy"):
        assert "-" not in row(table, label), f"expected a figure per target in {label!r}"
    assert row(table, "connect storm vs websockets")[1] == "<= 3x"


def test_session_engines_measures_every_engine():
    output = run_module("benchmarks.session_engines", "--sessions", "3")
    rows = [line for line in output.splitlines() if line.startswith("| ")][2:]
    labels = [row.split(" | ")[0].strip("| ") for row in rows]
    assert labels == ["db", "cached_db, warm", "cached_db, cold", "cache (Redis)", "signed_cookies"]
    assert all(float(row.split(" | ")[1]) > 0 for row in rows), output


def test_compressed_and_msgpack_deliveries_are_measured_against_plain_ones(tmp_path: Path):
    output = tmp_path / "results.json"
    table = run_benchmarks(
        output,
        "--connections",
        str(STORM_CLIENTS),
        "--targets",
        "project,project-deflate,project-msgpack",
        "--phases",
        "throughput",
        "--throughput-seconds",
        "0.5",
    )
    results = json.loads(output.read_text())
    runs = {run["target"]: run for run in results["runs"]}
    for name, run in runs.items():
        phase = run["throughput"]
        assert phase["delivered"] == phase["expected"] > 0, f"{name}: {phase}"
        assert phase["wire_bytes_per_delivery"] > phase["payload_bytes_per_delivery"], name
        assert run["server_errors"] == [], f"{name}: {run['server_errors']}"
        assert "storm" not in run, f"{name}: a variant has no storm"
    plain, deflate = runs["project"]["throughput"], runs["project-deflate"]["throughput"]
    msgpack = runs["project-msgpack"]["throughput"]
    assert runs["project"]["connect"]["negotiated"] == {"none": STORM_CLIENTS}
    assert runs["project-deflate"]["connect"]["negotiated"] == {
        "deflate (no context takeover)": STORM_CLIENTS
    }
    assert runs["project-msgpack"]["connect"]["negotiated"] == {
        "jobupdates.v1.msgpack": STORM_CLIENTS
    }
    assert (plain["compressed_frames"], plain["binary_frames"]) == (0, 0)
    assert deflate["compressed_frames"] == deflate["delivered"]
    assert msgpack["binary_frames"] == msgpack["delivered"]
    assert deflate["message_bytes"] == pytest.approx(plain["message_bytes"], rel=0.05)
    assert deflate["payload_bytes_per_delivery"] < 0.9 * deflate["message_bytes"], deflate
    assert msgpack["message_bytes"] < plain["message_bytes"]
    summary = results["summary"]["targets"]["project-deflate"]
    assert summary["vs_project"]["server_cpu_us_per_delivery"] > 0, summary
    assert summary["vs_project"]["wire_bytes_per_delivery"] < 0.9, summary
    same_server = runs["project-deflate"]["same_server"]
    assert same_server["blocks"]["plain"]["connect"]["negotiated"] == {"none": STORM_CLIENTS}
    assert same_server["blocks"]["plain"]["throughput"]["compressed_frames"] == 0
    assert same_server["blocks"]["again"]["connect"]["negotiated"] == {
        "deflate (no context takeover)": STORM_CLIENTS
    }
    assert summary["same_server_cpu_ratio"] > 0, summary
    assert summary["same_server_wire_ratio"] < 0.9, summary
    assert "-" not in row(table, "wire bytes/delivery (TCP payload, client side)")
    goal = row(table, "permessage-deflate CPU/delivery vs uncompressed (same server)")
    assert goal[1] == "<= 1.2x", goal
