"""The client registry's data, without I/O: records, keys, addresses, snapshots.

Pure: no Django, asyncio or Redis imports. :mod:`jobupdates.monitoring.registry` does the
Redis I/O with what this module builds and parses.

Redis layout (``P`` is :data:`KEY_PREFIX`):

| key | type | what | expiry |
| --- | --- | --- | --- |
| ``P:instances`` | set | every instance id seen | none; readers prune dead ids |
| ``P:instance:<id>`` | string | the instance's heartbeat (JSON) | 2 refresh intervals |
| ``P:clients:<id>`` | hash | client id -> client record (JSON) | 2 refresh intervals |
| ``P:activity:<id>`` | string | client id -> ``[last_active, sent]`` (JSON) | 2 intervals |

An instance is alive while its heartbeat key exists; readers ignore the
clients of every other instance, so a process killed by SIGKILL drops out
within two refresh intervals. A record is written when its client connects
or changes its subscriptions; what changes all the time (``last_active``,
``messages_sent``) is rewritten for every client at each refresh as one
string, which costs a fraction of re-encoding every record.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "KEY_PREFIX",
    "UNKNOWN_ADDRESS",
    "ClientRecord",
    "InstanceInfo",
    "Network",
    "Snapshot",
    "activity_fragment",
    "activity_key",
    "clients_key",
    "decode_activity",
    "decode_client",
    "decode_instance",
    "header",
    "instance_key",
    "join_activity",
    "merge_snapshot",
    "parse_networks",
    "resolve_remote_addr",
]

KEY_PREFIX = "jobupdates:registry"
INSTANCES_KEY = f"{KEY_PREFIX}:instances"
UNKNOWN_ADDRESS = "unknown"
MAX_USER_AGENT = 512
"""Longest user agent kept, in characters."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def instance_key(instance: str) -> str:
    """Return the key of an instance's heartbeat."""
    return f"{KEY_PREFIX}:instance:{instance}"


def clients_key(instance: str) -> str:
    """Return the key of the hash of an instance's clients."""
    return f"{KEY_PREFIX}:clients:{instance}"


def activity_key(instance: str) -> str:
    """Return the key of an instance's clients' activity."""
    return f"{KEY_PREFIX}:activity:{instance}"


Activity = dict[str, tuple[float, int]]
"""Client id -> (``last_active``, ``messages_sent``)."""


def activity_fragment(activity: Mapping[str, tuple[float, int]]) -> str:
    """Encode part of an instance's activity; :func:`join_activity` joins the parts.

    Encoding in parts lets the caller yield to its event loop between them.
    """
    return _compact(activity)[1:-1]


def join_activity(fragments: Iterable[str]) -> str:
    """Join :func:`activity_fragment` parts into the stored JSON object."""
    return "{" + ",".join(f for f in fragments if f) + "}"


def decode_activity(raw: bytes | str | None) -> Activity:
    """Decode a stored activity value; entries that are not ``[number, int]`` are skipped."""
    if raw is None:
        return {}
    try:
        entries = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(entries, dict):
        return {}
    activity: Activity = {}
    for client_id, value in entries.items():
        match value:
            case [float() | int() as last_active, int() as sent] if not isinstance(sent, bool):
                activity[client_id] = (float(last_active), sent)
    return activity


@dataclass(slots=True)
class ClientRecord:
    """One connected client, as the registry stores it.

    Attributes:
        client_id: The id sent in the ``welcome`` frame.
        channel_name: The consumer's channel-layer channel (for the admin disconnect).
        user_id: The user's primary key, ``None`` for an anonymous client.
        username: The user's name, ``""`` for an anonymous client.
        remote_addr: The client's address (see :func:`resolve_remote_addr`).
        user_agent: The ``User-Agent`` header, truncated.
        instance: The id of the server process holding the connection.
        connected_at: When it connected (Unix time).
        last_active: When it last sent a frame (Unix time).
        subscriptions: The channel-layer groups it receives.
        messages_sent: Job updates sent to it.
    """

    client_id: str
    channel_name: str
    user_id: int | None
    username: str
    remote_addr: str
    user_agent: str
    instance: str
    connected_at: float
    last_active: float
    subscriptions: list[str] = field(default_factory=list)
    messages_sent: int = 0

    def to_json(self) -> str:
        """Encode the record for the registry hash (a flat dict: no deep copy)."""
        return _compact(
            {
                "client_id": self.client_id,
                "channel_name": self.channel_name,
                "user_id": self.user_id,
                "username": self.username,
                "remote_addr": self.remote_addr,
                "user_agent": self.user_agent,
                "instance": self.instance,
                "connected_at": self.connected_at,
                "last_active": self.last_active,
                "subscriptions": self.subscriptions,
                "messages_sent": self.messages_sent,
            }
        )


_compact = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """A server process's heartbeat.

    Attributes:
        instance: Its id: host, pid and a random suffix.
        host: Its host name.
        pid: Its process id.
        started_at: When its registry started (Unix time).
        reported_at: When it last refreshed (Unix time).
    """

    instance: str
    host: str
    pid: int
    started_at: float
    reported_at: float

    def to_json(self) -> str:
        """Encode the heartbeat."""
        return _compact(asdict(self))


def decode_client(raw: bytes | str) -> ClientRecord | None:
    """Decode a stored client record; ``None`` if it is not one."""
    try:
        fields = json.loads(raw)
        return ClientRecord(**fields)
    except (ValueError, TypeError):
        return None


def decode_instance(raw: bytes | str | None) -> InstanceInfo | None:
    """Decode a stored heartbeat; ``None`` if missing (expired) or not one."""
    if raw is None:
        return None
    try:
        return InstanceInfo(**json.loads(raw))
    except (ValueError, TypeError):
        return None


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Parse trusted-proxy entries: IP addresses or CIDR networks.

    Raises:
        ValueError: Naming the first entry that is neither.
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"expected an IP address or CIDR network, got {entry!r}") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:port" or "[::1]"
        text = text[1 : text.index("]")]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def resolve_remote_addr(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]
) -> str:
    """Return the client's address, believing ``X-Forwarded-For`` only from trusted proxies.

    Walks the header from the right (the hop nearest the server): each entry is
    accepted only if the hop that reported it is a trusted proxy. With no
    trusted proxies the header is ignored, so a client cannot forge its address.

    Args:
        peer: The address of the TCP peer (``scope["client"][0]``).
        forwarded_for: The ``X-Forwarded-For`` header, if any.
        trusted: The trusted proxies' networks.

    Returns:
        The client's address, or :data:`UNKNOWN_ADDRESS` without a peer.
    """
    if not peer:
        return UNKNOWN_ADDRESS
    current = _address(peer)
    if current is None or not trusted or not forwarded_for:
        return peer
    for entry in reversed(forwarded_for.split(",")):
        if not _trusted(current, trusted):
            break
        reported = _address(entry)
        if reported is None:
            break  # garbage from a hop we trust: keep the last good address
        current = reported
    return str(current)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Return an ASGI header's value (the joined values if repeated), or ``None``."""
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every live instance and its clients, as read from the registry.

    Attributes:
        instances: Live instances by id.
        clients: Their clients.
        dead: Ids listed in the instance set whose heartbeat has expired.
    """

    instances: dict[str, InstanceInfo]
    clients: list[ClientRecord]
    dead: list[str] = field(default_factory=list)

    def per_instance(self) -> dict[str, int]:
        """Return the number of clients of each live instance (0 included)."""
        counts = dict.fromkeys(self.instances, 0)
        for client in self.clients:
            counts[client.instance] = counts.get(client.instance, 0) + 1
        return counts

    def distinct_users(self) -> int:
        """Return how many different users are connected (anonymous clients not counted)."""
        return len({c.user_id for c in self.clients if c.user_id is not None})


def merge_snapshot(
    heartbeats: Mapping[str, bytes | str | None],
    client_hashes: Mapping[str, Mapping[Any, bytes | str]],
    activities: Mapping[str, bytes | str | None] | None = None,
) -> Snapshot:
    """Merge what was read for each listed instance into one :class:`Snapshot`.

    Args:
        heartbeats: Instance id -> its heartbeat value (``None`` once expired).
        client_hashes: Instance id -> its clients hash (field -> record).
        activities: Instance id -> its activity value, which overrides the
            records' ``last_active`` and ``messages_sent`` (newer than a record
            written at connect).

    Returns:
        The live instances and their clients, sorted by connection time. Clients
        of an instance whose heartbeat expired, and records that do not decode
        or name another instance, are dropped.
    """
    instances: dict[str, InstanceInfo] = {}
    dead: list[str] = []
    for instance_id, raw in heartbeats.items():
        info = decode_instance(raw)
        if info is None or info.instance != instance_id:
            dead.append(instance_id)
        else:
            instances[instance_id] = info
    clients = []
    for instance_id in instances:
        activity = decode_activity((activities or {}).get(instance_id))
        for raw in client_hashes.get(instance_id, {}).values():
            record = decode_client(raw)
            if record is not None and record.instance == instance_id:
                last_active, sent = activity.get(record.client_id, (0.0, 0))
                record.last_active = max(record.last_active, last_active)
                record.messages_sent = max(record.messages_sent, sent)
                clients.append(record)
    clients.sort(key=lambda c: (c.connected_at, c.client_id))
    return Snapshot(instances=instances, clients=clients, dead=sorted(dead))
