"""This process in the monitoring records: its id, and how long what it writes lives.

A server process's registry entries (:mod:`jobupdates.monitoring.registry`), a
bridge's report (:mod:`jobupdates.ingest.report`) and its lease
(:mod:`jobupdates.ingest.leadership`) all name the process by
:func:`instance_id`; what it writes for readers expires after
:func:`expiry_ms`, two of its refresh intervals, so a process that died
without cleaning up drops out on its own.
"""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["expiry_ms", "instance_id"]

_ids: dict[int, str] = {}


def instance_id() -> str:
    """Return this process's id: host, pid and a random suffix, computed once.

    A forked child (another pid) gets its own.
    """
    pid = os.getpid()
    found = _ids.get(pid)
    if found is None:
        found = _ids[pid] = f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:6]}"
    return found


def expiry_ms(interval: float) -> int:
    """Return how long, in milliseconds, a record refreshed every ``interval`` seconds lives.

    Two intervals: one refresh may be late or fail without the record vanishing.
    """
    return max(1, int(interval * 2000))
