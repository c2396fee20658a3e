"""The updates the benchmarks publish: typical job updates, or the old padded one.

Every update carries ``seq`` (its number in the run) and ``t`` (its publish
time on the monotonic clock) in ``data``, which the load generator reads back.

* ``typical`` (the default): what a worker reports about a media job, a
  ``data`` dict of about 415 bytes of compact JSON: stage, progress, counts,
  worker, times, an input URI, codec, a message, a trace id. The values come from a
  generator seeded with ``seq`` (the same updates in every run), and differ
  from update to update as real ones do, so compression sees no more
  repetition than one real update holds.
* ``pad``: ``{"seq", "t", "pad": "x" * N}``, the payload of the runs before
  the compression figures (``--payload pad --pad-bytes 100`` gives the same).
"""

from __future__ import annotations

import json
import random
from typing import Any

from harness.updates import job_update

__all__ = ["KINDS", "sizes", "update", "update_data"]

KINDS = ("typical", "pad")
STAGES = ("queued", "downloading", "probing", "transcoding", "packaging", "uploading")
STATUSES = ("queued", "processing", "processing", "processing", "completed", "failed")
QUEUES = ("media-high", "media-default", "media-bulk")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
CODECS = ("h264", "hevc", "av1", "vp9")


def update_data(kind: str, seq: int, t: float, pad: str = "") -> dict[str, Any]:
    """Return the ``data`` of update ``seq`` published at ``t``."""
    if kind == "pad":
        return {"seq": seq, "t": t, "pad": pad}
    if kind != "typical":
        raise ValueError(f"unknown payload {kind!r}: expected one of {', '.join(KINDS)}")
    rng = random.Random(seq)
    total = rng.randint(20, 400)
    done = rng.randint(0, total)
    started = rng.randint(0, 86_399)
    return {
        "seq": seq,
        "t": t,
        "stage": rng.choice(STAGES),
        "progress": round(done / total, 4),
        "segments": {"done": done, "total": total, "failed": rng.randint(0, 3)},
        "worker": f"worker-{rng.randint(1, 64):02d}.{rng.choice(REGIONS)}",
        "attempt": rng.randint(1, 3),
        "queue": rng.choice(QUEUES),
        "started_at": (
            f"2026-11-30T{started // 3600:02d}:{started // 60 % 60:02d}:{started % 60:02d}."
            f"{rng.randint(0, 999):03d}Z"
        ),
        "eta_seconds": rng.randint(5, 3600),
        "input": {
            "uri": f"s3://botrix-uploads/{rng.getrandbits(48):012x}/source.mov",
            "bytes": rng.randint(10**6, 10**10),
        },
        "codec": rng.choice(CODECS),
        "message": f"segment {done} of {total} encoded",
        "trace_id": f"{rng.getrandbits(128):032x}",
    }


def update(kind: str, seq: int, t: float, pad: str = "") -> str:
    """Return update ``seq`` as a worker publishes it (``job_id`` ``bench-<seq>``)."""
    status = random.Random(seq).choice(STATUSES) if kind == "typical" else "processing"
    return job_update(f"bench-{seq}", status, update_data(kind, seq, t, pad))


def sizes(kind: str, pad: str = "", count: int = 100) -> dict[str, float]:
    """Return the mean size in bytes of ``count`` updates' ``data`` as compact JSON (as
    the server encodes it) and of the published message (``json.dumps``' spaces; the
    client frame is compact and adds ``type`` and ``position``)."""
    t = 12345.678901  # a monotonic time of the same length as the run's
    compact = (",", ":")
    data = [len(json.dumps(update_data(kind, n, t, pad), separators=compact)) for n in range(count)]
    whole = [len(update(kind, n, t, pad).encode()) for n in range(count)]
    return {"data_bytes": sum(data) / count, "published_bytes": sum(whole) / count}
