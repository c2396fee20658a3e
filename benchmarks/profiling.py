"""Where the server's CPU goes during a phase: py-spy samples, summarized per module.

``--profile`` records the server process with py-spy (non-blocking, so the
server is never paused) while the throughput and latency phases run, and
reports each watched module's share of the samples taken while the server held
the GIL (running Python: idle threads are not counted). It
measures a component's cost directly, where comparing two whole runs can only
bound it by the run-to-run noise (see "The registry's cost" in
docs/performance.md).
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["WATCHED", "Profiler", "shares"]

WATCHED = {
    "registry": ("jobupdates/monitoring/registry.py", "jobupdates/monitoring/records.py"),
    "metrics": ("prometheus_client/",),
}
"""Report name -> path fragments: a sample counts for a name if any frame matches."""
RATE = 250
"""Samples per second."""


def shares(lines: Iterable[str], watched: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """Summarize py-spy's raw (collapsed) output: total samples and each watched share.

    Each line is ``frame;frame;... count``; a sample counts once for a name
    however many of its frames match.
    """
    total = 0
    counts = dict.fromkeys(watched, 0)
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, fragments in watched.items():
            if any(fragment in stack for fragment in fragments):
                counts[name] += int(count)
    return {
        "samples": total,
        "shares": {name: (n / total if total else None) for name, n in counts.items()},
    }


class Profiler:
    """py-spy recording one process until :meth:`stop`."""

    def __init__(self, pid: int, output: Path) -> None:
        """Start recording ``pid`` into ``output`` (py-spy's raw format); return once sampling.

        Raises:
            RuntimeError: If py-spy is missing or stops before it samples.
        """
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if spy is None:
            raise RuntimeError("--profile needs py-spy: pip install -r benchmarks/requirements.txt")
        self.output = output
        argv = [spy, "record", "--nonblocking", "--gil", "-r", str(RATE), "-f", "raw"]
        self.process = subprocess.Popen(
            [*argv, "-o", str(output), "-p", str(pid)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        said = []
        for line in self.process.stdout:  # "py-spy> Sampling process ..." once attached
            said.append(line)
            if "Sampling process" in line:
                return
        self.process.wait()
        raise RuntimeError(f"py-spy stopped before sampling: {''.join(said).strip()}")

    def stop(self) -> dict[str, Any]:
        """Stop recording; return :func:`shares` of what was recorded."""
        self.process.send_signal(signal.SIGINT)
        try:
            errors, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            errors, _ = self.process.communicate()
        if not self.output.exists():
            logger.warning("py-spy recorded nothing (exit %s): %s", self.process.returncode, errors)
            return {"samples": 0, "shares": dict.fromkeys(WATCHED)}
        with self.output.open() as lines:
            return shares(lines, WATCHED)


def breakdown(lines: Iterable[str], top: int = 40) -> list[tuple[str, float]]:
    """Each function's inclusive share of the samples (a sample counts once per function).

    Functions are ``name (file)``, the file path cut after ``site-packages/``.
    """
    total = 0
    counts: dict[str, int] = {}
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in {_function(frame) for frame in stack.split(";")}:
            counts[frame] = counts.get(frame, 0) + int(count)
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return [(frame, n / total) for frame, n in ranked] if total else []


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({path.rpartition('site-packages/')[2]})"


if __name__ == "__main__":  # python -m benchmarks.profiling FILE: where the samples went
    with open(sys.argv[1]) as recorded:
        for function, share in breakdown(recorded, int(sys.argv[2]) if len(sys.argv) > 2 else 40):
            print(f"{share:6.1%}  {function}")
