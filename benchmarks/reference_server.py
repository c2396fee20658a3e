"""The baseline: a raw ``websockets`` broadcast server fed by Redis pub/sub.

``python -m benchmarks.reference_server --redis-url URL [--port 0]`` listens
on 127.0.0.1 and prints ``listening on port N``. It greets every connection
with a welcome frame, subscribes to the workers' channel with redis-py asyncio,
encodes each update's client frame once (the same JSON as the project's) and
writes it to every connection with :func:`websockets.asyncio.server.broadcast`.
No authentication, no channel layer: the least work a Python fan-out can do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import uuid

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from harness.updates import CHANNEL

logger = logging.getLogger(__name__)

BACKLOG = 4096


def encode(value: object) -> str:
    """Encode as the project does: compact, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def client_frame(data: bytes | str) -> str | None:
    """Return the client frame of one published update, or None if it is not valid."""
    try:
        update = json.loads(data)
        return encode(
            {
                "type": "job_update",
                "job_id": update["job_id"],
                "status": update["status"],
                "data": update.get("data"),
            }
        )
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("rejected message: %s", exc)
        return None


class Broadcaster:
    """The set of open connections and the Redis loop that feeds them."""

    def __init__(self) -> None:
        self.clients: set[ServerConnection] = set()

    async def handler(self, websocket: ServerConnection) -> None:
        """Greet a client, keep it in the set until it goes."""
        self.clients.add(websocket)
        try:
            await websocket.send(encode({"type": "welcome", "client_id": uuid.uuid4().hex}))
            await websocket.wait_closed()
        finally:
            self.clients.discard(websocket)

    async def relay(self, redis_url: str, channel: str, stop: asyncio.Event) -> None:
        """Forward every valid update on ``channel`` to every client until ``stop``."""
        client = aioredis.Redis.from_url(redis_url, socket_timeout=30, health_check_interval=10)
        async with client, client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(channel)
            logger.info("subscribed to %r", channel)
            print("subscribed", flush=True)
            while not stop.is_set():
                message = await pubsub.get_message(timeout=0.5)
                if message is None:
                    continue
                frame = client_frame(message["data"])
                if frame is not None:
                    broadcast(self.clients, frame)


async def run(host: str, port: int, redis_url: str, channel: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    broadcaster = Broadcaster()
    async with serve(
        broadcaster.handler, host, port, backlog=BACKLOG, compression=None, ping_interval=30
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on port {bound}", flush=True)
        await broadcaster.relay(redis_url, channel, stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--channel", default=CHANNEL)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args.host, args.port, args.redis_url, args.channel))


if __name__ == "__main__":
    main()
