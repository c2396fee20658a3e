"""Django admin: "Connected clients" (who is connected now) and "Dead letters".

Each list or detail request first rebuilds the :class:`ConnectedClient` read
model from the Redis registry, so the admin's search, ordering, instance
filter and pagination work on live data. The only action disconnects the
selected clients: it sends :data:`~jobupdates.monitoring.registry.DISCONNECT_EVENT` to
each client's channel, and its consumer, on whichever process holds it,
sends an ``error`` frame and closes with 4000. Every staff member may see
and use it; nothing can be added, changed or deleted.

"Dead letters" lists the messages the bridge rejected, rebuilt the same way
from the capped Redis list (:mod:`jobupdates.ingest.dead_letters`): read-only, staff
only, filterable by reason.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from jobupdates import redis_client
from jobupdates.access.announce import disconnect_user
from jobupdates.conf import conf
from jobupdates.ingest.dead_letters import read_dead_letters
from jobupdates.models import ConnectedClient, DeadLetter
from jobupdates.monitoring.reading import read_snapshot
from jobupdates.monitoring.registry import DISCONNECT_EVENT
from jobupdates.protocol.logs import loggable

__all__ = ["ConnectedClientAdmin", "DeadLetterAdmin"]

logger = logging.getLogger(__name__)


if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin


def _is_staff(request: HttpRequest) -> bool:
    user = request.user
    return bool(user.is_active and user.is_staff)


class ReadModelAdmin(_ModelAdmin):
    """Read-only and staff-only; the table is rebuilt from Redis before each list or detail."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _is_staff(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_staff(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    source = "Redis"
    """What the rows are read from, for the warning when it cannot be read."""

    def read_rows(self, client: redis.Redis) -> Iterable[Any]:
        """Read the current rows (unsaved model instances) from Redis."""
        raise NotImplementedError

    def _refresh(self, request: HttpRequest) -> None:
        """Rebuild the read model from Redis; on failure, say so and show the last rows."""
        client = redis_client.sync_client(redis_client.Use.REGISTRY)
        try:
            rows = list(self.read_rows(client))
        except (RedisError, OSError) as exc:
            logger.warning("could not read the %s (%s: %s)", self.source, type(exc).__name__, exc)
            self.message_user(
                request,
                f"The {self.source} could not be read ({type(exc).__name__}); "
                "this list may be out of date.",
                messages.WARNING,
            )
            return
        finally:
            client.close()
        self.model.objects.replace_with(rows)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if _is_staff(request):
            self._refresh(request)
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if _is_staff(request):
            self._refresh(request)
        return super().change_view(request, object_id, form_url, extra_context)


async def _send_disconnects(channels: list[str], by: str) -> None:
    layer = get_channel_layer()
    for channel in channels:
        await layer.send(channel, {"type": DISCONNECT_EVENT, "by": by})


@admin.register(ConnectedClient)
class ConnectedClientAdmin(ReadModelAdmin):
    """The live list of WebSocket clients, across every server process."""

    list_display = (
        "client_id",
        "username",
        "remote_addr",
        "instance",
        "connected_at",
        "last_active",
        "messages_sent",
    )
    list_filter = ("instance",)
    search_fields = ("client_id", "username", "remote_addr")
    ordering = ("-connected_at",)
    sortable_by = ("username", "remote_addr", "instance", "connected_at", "last_active")
    readonly_fields = (
        "client_id",
        "user_id",
        "username",
        "remote_addr",
        "user_agent",
        "instance",
        "connected_at",
        "last_active",
        "subscriptions",
        "messages_sent",
        "channel_name",
    )
    actions = ["disconnect_selected", "disconnect_users"]
    list_per_page = 100

    def has_disconnect_permission(self, request: HttpRequest) -> bool:
        """Who may use the disconnect action: any staff member."""
        return _is_staff(request)

    source = "client registry"

    def read_rows(self, client: redis.Redis) -> Iterable[ConnectedClient]:
        return map(ConnectedClient.from_record, read_snapshot(client).clients)

    @admin.action(description="Disconnect selected clients", permissions=["disconnect"])
    def disconnect_selected(
        self, request: HttpRequest, queryset: QuerySet[ConnectedClient]
    ) -> None:
        """Ask each selected client's consumer to send an error frame and close with 4000."""
        clients = list(queryset)
        by = request.user.get_username()
        async_to_sync(_send_disconnects)([c.channel_name for c in clients], by)
        for client in clients:
            logger.info("%s disconnected client %s", loggable(by), loggable(client.client_id))
        self.message_user(
            request, f"Asked {len(clients)} client(s) to disconnect.", messages.SUCCESS
        )

    @admin.action(
        description="Disconnect every connection of the selected clients' users",
        permissions=["disconnect"],
    )
    def disconnect_users(self, request: HttpRequest, queryset: QuerySet[ConnectedClient]) -> None:
        """Close every connection of each selected client's user, on every server process,
        listed or not (the path of :func:`jobupdates.revoke`): 4000."""
        users = sorted({str(c.user_id) for c in queryset if c.user_id is not None})
        by = request.user.get_username()
        for user in users:
            disconnect_user(user, by)
            logger.info("%s disconnected every connection of user %s", loggable(by), user)
        self.message_user(
            request,
            f"Asked every connection of {len(users)} user(s) to disconnect.",
            messages.SUCCESS,
        )


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadModelAdmin):
    """The newest messages the bridge rejected, with their reasons (read-only, staff only)."""

    list_display = ("received_at", "reason", "detail", "size", "preview_start")
    list_filter = ("reason",)
    search_fields = ("id", "detail", "preview")
    ordering = ("-received_at",)
    readonly_fields = (
        "id",
        "received_at",
        "channel",
        "reason",
        "detail",
        "size",
        "encoding",
        "truncated",
        "preview",
    )
    list_per_page = 100

    @admin.display(description="payload starts")
    def preview_start(self, obj: DeadLetter) -> str:
        """The first 80 characters of the preview (base64 for binary payloads)."""
        return obj.preview[:80]

    source = "dead letters"

    def read_rows(self, client: redis.Redis) -> Iterable[DeadLetter]:
        letters, _kept = read_dead_letters(client, conf.DEAD_LETTER_KEY, conf.DEAD_LETTER_SIZE)
        rows = {letter.id: DeadLetter.from_entry(letter) for letter in letters}  # ids are unique
        return rows.values()
