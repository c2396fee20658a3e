"""Soak: a steady update rate with churning clients that resume with ``since=``.

``python -m benchmarks.soak [--minutes 30] [--clients 200] [--rate 20] [--churn 5]``

Runs the project (Daphne + run_bridge, as deployed) on a throwaway Redis.
Each client records the sequence numbers of the updates it receives; every
second ``--churn`` random clients disconnect and reconnect with the last
position they saw, so every client must end with every update published
while it existed, exactly once. Daphne's and the bridge's RSS are sampled
every 10 s. Prints a JSON summary: lost and duplicate deliveries, resets,
and the RSS at the start, middle and end. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.sysstats import rss_bytes
from benchmarks.targets import Stack, prepare_database, start
from harness.updates import CHANNEL, job_update

logger = logging.getLogger(__name__)


@dataclass
class Client:
    """One churning client: what it saw, and where to resume."""

    index: int
    seen: list[int] = field(default_factory=list)
    position: str | None = None
    resets: int = 0
    first_seq: int | None = None
    ws: ClientConnection | None = None
    reader: asyncio.Task[None] | None = None


async def run_client(stack: Stack, client: Client, ready: asyncio.Event) -> None:
    query = f"?since={client.position}" if client.position else ""
    async with connect(
        stack.url + query,
        origin=stack.origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": stack.cookie},
        open_timeout=30,
    ) as ws:
        client.ws = ws
        ready.set()
        async for raw in ws:
            frame = json.loads(raw)
            if frame["type"] == "job_update":
                client.seen.append(int(frame["data"]["seq"]))
                client.position = frame["position"]
            elif frame["type"] == "reset":
                client.resets += 1


async def reconnect(stack: Stack, client: Client) -> None:
    if client.ws is not None:
        await client.ws.close()
    if client.reader is not None:
        await asyncio.gather(client.reader, return_exceptions=True)
    ready = asyncio.Event()
    client.reader = asyncio.create_task(run_client(stack, client, ready))
    await asyncio.wait_for(ready.wait(), 30)


async def soak(stack: Stack, minutes: float, clients: int, rate: float, churn: int) -> dict:
    publisher = redis.Redis.from_url(stack.redis.url)
    pool = [Client(i) for i in range(clients)]
    for client in pool:
        await reconnect(stack, client)
    samples: list[dict[str, float]] = []
    seq = 0
    deadline = time.monotonic() + minutes * 60
    next_sample = 0.0
    next_churn = time.monotonic() + 1
    while time.monotonic() < deadline:
        for client in pool:  # the first update a client must see
            if client.first_seq is None:
                client.first_seq = seq
        payload = job_update(f"soak-{seq % 50}", "processing", {"seq": seq})
        await asyncio.to_thread(publisher.publish, CHANNEL, payload)
        seq += 1
        now = time.monotonic()
        if now >= next_churn:
            next_churn = now + 1
            for client in random.sample(pool, churn):
                await reconnect(stack, client)
        if now >= next_sample:
            next_sample = now + 10
            samples.append(
                {
                    "t": round(now - (deadline - minutes * 60)),
                    "daphne_rss": rss_bytes(stack.server_pids),
                    "bridge_rss": rss_bytes(stack.bridge_pids),
                }
            )
        await asyncio.sleep(1 / rate)
    await asyncio.sleep(3)  # the last updates in flight
    for client in pool:
        if client.ws is not None:
            await client.ws.close()
    lost = duplicates = 0
    for client in pool:
        expected = set(range(client.first_seq or 0, seq))
        lost += len(expected - set(client.seen))
        duplicates += len(client.seen) - len(set(client.seen))
    publisher.close()
    return {
        "minutes": minutes,
        "clients": clients,
        "rate_per_second": rate,
        "reconnects_per_second": churn,
        "published": seq,
        "lost": lost,
        "duplicates": duplicates,
        "resets": sum(c.resets for c in pool),
        "rss_samples": [samples[0], samples[len(samples) // 2], samples[-1]] if samples else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="updates per second")
    parser.add_argument("--churn", type=int, default=5, help="reconnects per second")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with tempfile.TemporaryDirectory() as directory:
        stack = start("project", prepare_database(Path(directory)), cpus={0, 1})
        try:
            result = asyncio.run(soak(stack, args.minutes, args.clients, args.rate, args.churn))
        finally:
            stack.stop()
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
