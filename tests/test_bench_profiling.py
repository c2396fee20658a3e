"""benchmarks/profiling.py: module shares from py-spy's raw output, and a real recording."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.profiling import WATCHED, Profiler, breakdown, shares

RAW = [
    "<module> (daphne/cli.py:1);write (jobupdates/delivery/daphne.py:86) 90\n",
    "<module> (daphne/cli.py:1);refresh (jobupdates/monitoring/registry.py:207) 6\n",
    "refresh (jobupdates/monitoring/registry.py:207);"
    "encode (jobupdates/monitoring/records.py:81) 3\n",
    "observe (prometheus_client/metrics.py:600) 1\n",
    "not a sample line\n",
]


def test_shares_count_each_sample_once_per_watched_name():
    result = shares(RAW, WATCHED)
    assert result["samples"] == 100
    assert result["shares"] == {"registry": 0.09, "metrics": 0.01}


def test_breakdown_gives_each_function_its_inclusive_share_once_per_sample():
    recursive = "f (x/site-packages/a/b.py:1);f (x/site-packages/a/b.py:2) 4\n"
    ranked = dict(breakdown([*RAW, recursive]))
    assert ranked["<module> (daphne/cli.py)"] == 96 / 104
    assert ranked["refresh (jobupdates/monitoring/registry.py)"] == 9 / 104
    assert ranked["f (a/b.py)"] == 4 / 104, "expected a recursive function counted once"
    assert breakdown([]) == []


def test_no_samples_gives_no_share():
    assert shares([], WATCHED) == {"samples": 0, "shares": {"registry": None, "metrics": None}}


ROOT = Path(__file__).resolve().parents[1]
BUSY = """
import time
from jobupdates.monitoring.records import activity_fragment
print("ready", flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:
    activity_fragment({str(n): (1.5, n) for n in range(100)})
"""


@pytest.mark.timeout(60)
def test_a_real_recording_finds_where_the_process_spends_its_time(tmp_path: Path):
    busy = subprocess.Popen(  # spends most of its time in the registry's presence.py
        [sys.executable, "-c", BUSY], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert busy.stdout is not None
        assert busy.stdout.readline() == "ready\n"
        profiler = Profiler(busy.pid, tmp_path / "out.pyspy")  # returns once sampling
        time.sleep(0.5)  # the measurement window, not a wait for an event
        result = profiler.stop()
    finally:
        busy.kill()
        busy.wait()
    assert result["samples"] > 0, result
    assert result["shares"]["registry"] > 0.5, result
    assert result["shares"]["metrics"] == 0, result


def test_a_process_that_cannot_be_recorded_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RuntimeError, match="py-spy stopped before sampling"):
        Profiler(2**22 + 1, tmp_path / "out.pyspy")  # above the default pid_max: no such process
