"""The connect request: what a client asks for in the WebSocket URL's query string.

Pure: no Django, asyncio or I/O.

* ``since=<position>``: resume after this position;
* ``job=<id>`` (repeatable): receive only these jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from jobupdates.protocol.frames import ErrorCode, FrameError, parse_job_ids

__all__ = ["ConnectRequest", "parse_connect_query"]


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """What a client asked for when it connected.

    Attributes:
        since: The position to resume after, as sent (checked when it is used).
        job_ids: The jobs it subscribed to; empty for the all-jobs feed.
    """

    since: str | None = None
    job_ids: tuple[str, ...] = ()


def parse_connect_query(query: bytes | str) -> ConnectRequest:
    """Parse a WebSocket URL's query string.

    Raises:
        FrameError: ``invalid_job_ids`` for a blank or over-long ``job``;
            ``invalid_position`` for more than one ``since``.
    """
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    since: list[str] = []
    jobs: list[str] = []
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key == "since":
            since.append(value)
        elif key == "job":
            jobs.append(value)
    if len(since) > 1:
        raise FrameError(ErrorCode.INVALID_POSITION, f"expected one since=, got {len(since)}")
    return ConnectRequest(
        since=since[0] if since else None, job_ids=parse_job_ids(jobs) if jobs else ()
    )
