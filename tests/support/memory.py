"""A process's resident memory, sampled while a test runs."""

from __future__ import annotations

import asyncio

from benchmarks.sysstats import rss_bytes


def rss(pid: int) -> int:
    """Resident set size of ``pid``, in bytes."""
    size = rss_bytes([pid])
    assert size, f"expected process {pid} running"
    return size


async def sample_rss(pid: int, peak: list[int], done: asyncio.Event) -> None:
    """Keep the largest RSS of ``pid`` in ``peak[0]`` until ``done`` is set."""
    while not done.is_set():
        peak[0] = max(peak[0], rss(pid))
        await asyncio.sleep(0.05)
