"""Process-local channels: one Redis subscription per process instead of one per connection.

Channels gives each consumer a channel of its own; channels_redis's pub/sub
layer backs each with a Redis ``SUBSCRIBE`` (a round trip on connect, another
on disconnect), an :class:`asyncio.Queue`, and a task of the consumer that
waits on it. A connection of this project receives almost nothing there (a
staff member's disconnect, the fast path's failure notice), so
:class:`~jobupdates.delivery.layers.JobUpdatesChannelLayer` offers *mailboxes*
instead (:meth:`~jobupdates.delivery.layers.JobUpdatesChannelLayer.new_mailbox`):

* A mailbox's channel name is ``<process channel>!<id>``, Channels' form for a
  process-local channel. The process subscribes once, on every shard, to the
  pattern ``<process channel>!*`` (``PSUBSCRIBE``), so a plain ``send`` from
  any process, with this layer or channels_redis's own, reaches it.
* The layer hands each message to the mailbox, which decodes it and calls its
  consumer's function: no queue, no waiting task. Group messages for a member
  without a sink reach its mailbox the same way the layer feeds a queue
  (``put_nowait``).

A message for a mailbox that is gone (the connection closed meanwhile) is
dropped, as channels_redis drops one for an unsubscribed channel; one that
does not decode is dropped and counted like any other undecodable layer
message.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from jobupdates.delivery.faults import LayerFaults

__all__ = ["SEPARATOR", "Mailbox", "Slot", "mailbox_name", "process_channel"]

SEPARATOR = "!"
"""Between the process channel and a mailbox's id, as in Channels' process-local names."""


class Slot(Protocol):
    """Where the layer puts a channel's raw messages: a queue or a mailbox."""

    def put_nowait(self, item: bytes) -> None: ...


def process_channel(prefix: str, instance: str) -> str:
    """The start of this process's mailbox names: a digest of ``instance`` (its host,
    pid and a random part), so the name is short (Channels' names stay under 100
    characters, whatever the host's name) and free of glob characters (the
    process subscribes to it followed by ``*``)."""
    digest = hashlib.blake2b(instance.encode(), digest_size=8).hexdigest()
    return f"{prefix}specific.{digest}{SEPARATOR}"


def mailbox_name(process: str) -> str:
    """A new mailbox's channel name in ``process``."""
    return f"{process}{uuid.uuid4().hex}"


class Mailbox:
    """One consumer's channel: decodes each message and hands it to ``deliver``."""

    __slots__ = ("decode", "deliver", "faults", "name")

    def __init__(
        self,
        name: str,
        deliver: Callable[[dict[str, Any]], None],
        decode: Callable[[bytes], Any],
        faults: LayerFaults,
    ) -> None:
        self.name = name
        self.deliver = deliver
        self.decode = decode
        self.faults = faults

    def put_nowait(self, item: bytes) -> None:
        message = self.faults.decode_event(item, self.decode, self.name, "for")
        if message is not None:
            self.deliver(message)
