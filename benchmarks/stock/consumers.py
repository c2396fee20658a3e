"""The tutorial's consumer: join a group, ``json.dumps`` every event, send it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "jobupdates.all"


class StockConsumer(AsyncWebsocketConsumer):
    """One instance per connection, with Channels' default dispatch."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "welcome", "client_id": uuid.uuid4().hex}))

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def job_update(self, event: dict[str, Any]) -> None:
        await self.send(
            text_data=json.dumps(
                {
                    "type": "job_update",
                    "job_id": event["job_id"],
                    "status": event["status"],
                    "data": event["data"],
                }
            )
        )
