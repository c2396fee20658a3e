"""An update as a worker publishes it: the JSON text on the updates channel."""

from __future__ import annotations

import json
from typing import Any

CHANNEL = "botrix:jobs:updates"
"""The Redis channel workers PUBLISH on (``JOBUPDATES_CHANNEL``'s default)."""
STREAM = "botrix:jobs:ingest"
"""The stream workers XADD to for durable ingest (``JOBUPDATES_INGEST_STREAM``'s default)."""


def job_update(job_id: str, status: str = "processing", data: Any = None) -> str:
    """Return the message a worker publishes for one update, e.g.
    ``{"job_id": "j-1", "status": "processing", "data": null}``."""
    return json.dumps({"job_id": job_id, "status": status, "data": data})
