"""Readings from /proc: CPU time and RSS of processes, machine-wide CPU, listen overflows.

Everything here reads Linux's /proc directly, so the harness needs no extra
package and each reading costs one small file read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MachineCpu",
    "cpu_seconds",
    "listen_overflows",
    "machine_cpu",
    "machine_info",
    "pin",
    "rss_bytes",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pids: Iterable[int]) -> float:
    """Return the user + system CPU seconds used so far by ``pids`` (all their threads).

    A pid that has exited counts as 0, so read before stopping a process.
    """
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    """Return the resident set size of ``pids`` added up, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE_SIZE
        except FileNotFoundError:
            continue
    return total


@dataclass(frozen=True)
class MachineCpu:
    """Machine-wide CPU seconds from /proc/stat, split the way the flags need."""

    busy: float
    """user + nice + system: time some process ran, ours or another's."""
    softirq: float
    """irq + softirq: mostly loopback TCP work, which no process is billed for."""
    per_core_busy: tuple[float, ...]

    def __sub__(self, other: MachineCpu) -> MachineCpu:
        return MachineCpu(
            self.busy - other.busy,
            self.softirq - other.softirq,
            tuple(a - b for a, b in zip(self.per_core_busy, other.per_core_busy, strict=True)),
        )


def machine_cpu() -> MachineCpu:
    """Return the machine's CPU seconds so far (all cores, and per core)."""
    busy = softirq = 0.0
    per_core: list[float] = []
    with open("/proc/stat") as stat:
        for line in stat:
            if not line.startswith("cpu"):
                break
            name, *values = line.split()
            ticks = [int(value) for value in values]
            line_busy = (ticks[0] + ticks[1] + ticks[2]) / CLOCK_TICKS
            if name == "cpu":
                busy = line_busy
                softirq = (ticks[5] + ticks[6]) / CLOCK_TICKS
            else:
                per_core.append(line_busy)
    return MachineCpu(busy, softirq, tuple(per_core))


def listen_overflows() -> int:
    """Return TcpExt ListenOverflows from /proc/net/netstat (this network namespace)."""
    with open("/proc/net/netstat") as netstat:
        lines = netstat.read().splitlines()
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            table = dict(zip(header.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus``; threads it starts later inherit that."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            continue


def machine_info() -> dict[str, object]:
    """Describe the machine: core count, CPU model, kernel, memory."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "fd_limit": os.sysconf("SC_OPEN_MAX"),
    }
