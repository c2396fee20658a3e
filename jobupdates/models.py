"""The admin's read models: the client registry, and the dead-letter list.

The registry lives in Redis (:mod:`jobupdates.monitoring.registry`); Django's admin needs
a queryset to search, order, filter and paginate. :class:`ConnectedClient` is
a table the admin rebuilds from Redis on each request
(:meth:`ReadModelQuerySet.replace_with`), so the list is as fresh as
Redis. Nothing writes it otherwise, and nothing in it is editable.
:class:`DeadLetter` is the same for the bridge's dead-letter list
(:mod:`jobupdates.ingest.dead_letters`).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable
from typing import TypeVar

from django.db import IntegrityError, models, transaction

from jobupdates.monitoring.records import ClientRecord
from jobupdates.protocol import dead_letters

__all__ = ["ConnectedClient", "DeadLetter"]

logger = logging.getLogger(__name__)


def _when(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


M = TypeVar("M", bound=models.Model)


class ReadModelQuerySet(models.QuerySet[M]):
    """Queries of a read model that is rebuilt from Redis."""

    def replace_with(self, rows: Iterable[M]) -> None:
        """Make the table hold exactly ``rows``: delete and bulk insert in one transaction.

        Two concurrent refreshes may race on insert; the loser keeps the
        winner's rows, which are as fresh.
        """
        try:
            with transaction.atomic():
                self.all().delete()
                self.bulk_create(rows)
        except IntegrityError:
            logger.info("another request refreshed %s at the same time", self.model.__name__)


class ConnectedClient(models.Model):
    """One WebSocket client connected to any server process (read model; see the module)."""

    client_id = models.CharField("client id", max_length=32, primary_key=True)
    user_id = models.BigIntegerField("user id", null=True, blank=True)
    username = models.CharField("user", max_length=150, blank=True)
    remote_addr = models.CharField("IP address", max_length=64)
    user_agent = models.CharField("user agent", max_length=512, blank=True)
    instance = models.CharField("server instance", max_length=255, db_index=True)
    connected_at = models.DateTimeField("connected at")
    last_active = models.DateTimeField("last active")
    subscriptions = models.CharField(max_length=1024, blank=True)
    messages_sent = models.BigIntegerField("messages sent", default=0)
    channel_name = models.CharField("channel", max_length=255)

    objects = ReadModelQuerySet["ConnectedClient"].as_manager()

    class Meta:
        verbose_name = "connected client"
        verbose_name_plural = "connected clients"
        ordering = ["-connected_at"]
        default_permissions = ("view",)
        # The app's permissions live here, as Django attaches permissions to a model.
        permissions = [("view_all_jobs", "Can receive the updates of every job")]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.username or 'anonymous'} from {self.remote_addr})"

    @classmethod
    def from_record(cls, record: ClientRecord) -> ConnectedClient:
        """Build an unsaved row from a registry record."""
        return cls(
            client_id=record.client_id,
            user_id=record.user_id,
            username=record.username,
            remote_addr=record.remote_addr,
            user_agent=record.user_agent[:512],
            instance=record.instance,
            connected_at=_when(record.connected_at),
            last_active=_when(record.last_active),
            subscriptions=", ".join(record.subscriptions)[:1024],
            messages_sent=record.messages_sent,
            channel_name=record.channel_name,
        )


class DeadLetter(models.Model):
    """One message the bridge rejected (read model of the Redis dead-letter list)."""

    id = models.CharField("id", max_length=32, primary_key=True)
    received_at = models.DateTimeField("received at")
    channel = models.CharField(max_length=255)
    reason = models.CharField(max_length=64, db_index=True)
    detail = models.CharField(max_length=dead_letters.DETAIL_CHARS, blank=True)
    size = models.BigIntegerField("size (bytes)")
    preview = models.TextField("payload preview", blank=True)
    encoding = models.CharField("preview encoding", max_length=16)
    truncated = models.BooleanField("preview truncated", default=False)

    objects = ReadModelQuerySet["DeadLetter"].as_manager()

    class Meta:
        verbose_name = "dead letter"
        verbose_name_plural = "dead letters"
        ordering = ["-received_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.reason} at {self.received_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def from_entry(cls, letter: dead_letters.DeadLetter) -> DeadLetter:
        """Build an unsaved row from a dead-letter entry."""
        return cls(
            id=letter.id,
            received_at=_when(letter.received_at),
            channel=letter.channel[:255],
            reason=letter.reason[:64],
            detail=letter.detail[: dead_letters.DETAIL_CHARS],
            size=letter.size,
            preview=letter.preview,
            encoding=letter.encoding.value,
            truncated=letter.truncated,
        )
