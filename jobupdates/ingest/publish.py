"""Publishing job updates as a worker: PUBLISH, or XADD to the durable ingest stream.

Importable without Django settings::

    from jobupdates.ingest.publish import publish_job_update

    publish_job_update("redis://redis:6379/0", "job-123", "completed", {"rows": 10})
    publish_job_update(client, "job-123", "completed", durable=True)

Each update is validated with the bridge's own parser first
(:func:`jobupdates.protocol.publishing.build_payload`), so what the bridge
would reject raises :class:`~jobupdates.protocol.publishing.PublishError`
here instead. ``durable=True`` adds it to the ingest stream (``XADD <stream>
MAXLEN ~ <stream_size> * payload <JSON>``): it is forwarded even if no bridge
runs right now, once one starts, in order and once.
"""

from __future__ import annotations

from typing import Any

import redis

from jobupdates import redis_client
from jobupdates.protocol import DEFAULT_STATUSES
from jobupdates.protocol.publishing import PublishError, build_payload

__all__ = [
    "DEFAULT_CHANNEL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_STREAM",
    "DEFAULT_STREAM_SIZE",
    "PublishError",
    "publish_job_update",
    "send_payload",
]

DEFAULT_CHANNEL = "botrix:jobs:updates"
"""``JOBUPDATES_CHANNEL``'s default."""
DEFAULT_STREAM = "botrix:jobs:ingest"
"""``JOBUPDATES_INGEST_STREAM``'s default."""
DEFAULT_STREAM_SIZE = 100_000
"""``JOBUPDATES_INGEST_STREAM_SIZE``'s default."""
DEFAULT_MAX_BYTES = 1024 * 1024
"""``JOBUPDATES_MAX_PAYLOAD_BYTES``'s default."""


def send_payload(
    client: redis.Redis,
    payload: bytes,
    *,
    durable: bool = False,
    channel: str = DEFAULT_CHANNEL,
    stream: str = DEFAULT_STREAM,
    stream_size: int = DEFAULT_STREAM_SIZE,
) -> int | str:
    """PUBLISH an already validated payload, or XADD it if ``durable``.

    Returns:
        How many subscribers received it (PUBLISH), or its stream entry ID (XADD).
    """
    if durable:
        entry_id = client.xadd(stream, {"payload": payload}, maxlen=stream_size, approximate=True)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return int(client.publish(channel, payload))


def publish_job_update(
    client_or_url: redis.Redis | str,
    job_id: str,
    status: str,
    data: Any = None,
    *,
    durable: bool = False,
    channel: str = DEFAULT_CHANNEL,
    stream: str = DEFAULT_STREAM,
    stream_size: int = DEFAULT_STREAM_SIZE,
    statuses: tuple[str, ...] = DEFAULT_STATUSES,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> int | str:
    """Validate one update as the bridge does, then PUBLISH it or (``durable``) XADD it.

    Args:
        client_or_url: A ``redis.Redis`` client, or the URL of the Redis to use
            (a client is made and closed for this one call).
        job_id: The job's identifier.
        status: The job's status; one of ``statuses``.
        data: Any JSON value (``null`` when ``None``).
        durable: Add it to the durable ingest ``stream`` instead of PUBLISHing on ``channel``.
        channel: The bridge's channel (``JOBUPDATES_CHANNEL``).
        stream: The durable ingest stream (``JOBUPDATES_INGEST_STREAM``).
        stream_size: The stream's approximate length cap (``JOBUPDATES_INGEST_STREAM_SIZE``).
        statuses: The statuses the bridge accepts (``JOBUPDATES_STATUSES``).
        max_bytes: The largest payload the bridge accepts (``JOBUPDATES_MAX_PAYLOAD_BYTES``).

    Returns:
        How many subscribers received it (PUBLISH), or its stream entry ID (XADD).

    Raises:
        PublishError: If the bridge would reject the update; nothing is sent.
        redis.RedisError: If Redis cannot be reached or refuses the command.
    """
    payload = build_payload(job_id, status, data, statuses=statuses, max_bytes=max_bytes)
    options: dict[str, Any] = {
        "durable": durable,
        "channel": channel,
        "stream": stream,
        "stream_size": stream_size,
    }
    if isinstance(client_or_url, str):
        client = redis_client.sync_client(redis_client.Use.INTERACTIVE, client_or_url)
        try:
            return send_payload(client, payload, **options)
        finally:
            client.close()
    return send_payload(client_or_url, payload, **options)
