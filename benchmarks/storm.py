"""The connect storm: every client connects at once, each with its own session.

The generator processes start every handshake of their share at the same
moment (no concurrency limit); a client counts once its welcome frame came.
A client the server refuses as busy (``server_busy``, close 4503) comes back
as ``jobupdates.js`` does, after a jittered backoff, up to
:data:`benchmarks.backoff.MAX_ATTEMPTS` attempts; any other failure is final.
The phase reports handshakes per second and the time from the first connect
attempt to the last welcome, retries included (monotonic clock, shared by the
processes), the clients welcomed at their first attempt, those refused busy
at least once, the retries, and the failures; with any failure, "until all
welcomed" is None (not all were).
It runs after the idle phase, on its own connections, so the idle memory per
connection is measured on a server that has not yet grown its heap for a storm.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.backoff import MAX_ATTEMPTS
from benchmarks.loadgen_client import GeneratorPool
from benchmarks.phases import Sample, wait_for_quiet
from benchmarks.profiling import Profiler
from benchmarks.sysstats import listen_overflows
from benchmarks.targets import Stack

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 120.0
"""How long one client may wait for its handshake, then for its welcome."""


def storm(
    stack: Stack,
    pool: GeneratorPool,
    cookies: list[str],
    quiet_wait: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Connect every client of ``pool`` at once, then close them all; report.

    Args:
        cookies: One Cookie header per client, used if the target logs in
            (``stack.cookie`` is set); cookieless targets get none.
        profile: Where py-spy records the server during the storm (raw
            samples, kept: ``python -m benchmarks.profiling FILE`` reads them).
    """
    clients = sum(pool.shares)
    quiet = wait_for_quiet(quiet_wait)
    overflows = listen_overflows()
    profiler = Profiler(stack.server.popen.pid, profile) if profile else None
    try:
        before = Sample.take(stack, pool)
        reports = pool.connect(
            stack.url,
            stack.origin,
            "",
            concurrency=None,
            cookies=cookies[:clients] if stack.cookie else None,
            timeout=TIMEOUT_SECONDS,
            busy_attempts=MAX_ATTEMPTS,
            offer=stack.offer.headers,
        )
        usage = Sample.take(stack, pool).since(before)
    finally:
        spied = profiler.stop() if profiler is not None else None
    overflowed = listen_overflows() - overflows
    closed = pool.all({"cmd": "close"}, timeout=TIMEOUT_SECONDS)
    result = _summary(reports, clients)
    server_cpu = usage["cpu_seconds"]["server"] + usage["cpu_seconds"]["bridge"]
    result.update(
        closed=sum(c["closed"] for c in closed),
        server_cpu_us_per_handshake=(
            server_cpu / result["welcomed"] * 1e6 if result["welcomed"] else None
        ),
        listen_overflows=overflowed,
        usage=usage,
        quiet_before=quiet,
        flags=list(usage["flags"]),
    )
    if spied is not None:
        result["profile"] = spied
    if overflowed:
        result["flags"].append(f"{overflowed} listen overflows")
    if result["failed"]:
        result["flags"].append(f"{result['failed']} storm clients failed: {result['errors']}")
    logger.info(
        "storm: %d of %d welcomed in %.2f s (%d at the first attempt, %d refused busy, %d retries)",
        result["welcomed"],
        clients,
        result["seconds_until_last_welcome"] or 0.0,
        result["welcomed_first_attempt"],
        result["refused_busy"],
        result["retries"],
    )
    return result


def _summary(reports: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """Add up the generator processes' reports: counts, and first attempt to last welcome."""
    welcomed = sum(r["connected"] for r in reports)
    attempts = [r["first_attempt"] for r in reports if r["first_attempt"] is not None]
    welcomes = [r["last_welcome"] for r in reports if r["last_welcome"] is not None]
    seconds = max(welcomes) - min(attempts) if attempts and welcomes else None
    failed = sum(r["failed"] for r in reports)
    return {
        "clients": clients,
        "welcomed": welcomed,
        "failed": failed,
        "welcomed_first_attempt": sum(r["welcomed_first_attempt"] for r in reports),
        "refused_busy": sum(r["refused_busy"] for r in reports),
        "retries": sum(r["retries"] for r in reports),
        "errors": [e for r in reports for e in r["errors"]][:5],
        "error_counts": dict(sum((Counter(r["error_counts"]) for r in reports), Counter())),
        "seconds_until_last_welcome": seconds,
        "seconds_until_all_welcomed": None if failed else seconds,
        "handshakes_per_second": welcomed / seconds if seconds else None,
    }
