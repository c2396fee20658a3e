"""The compression figures of the benchmarks, without a server: what the clients offer
and read back (benchmarks/wire.py), the updates (benchmarks/payloads.py), and the
ratios against ``project`` paired by round (benchmarks/report.py)."""

from __future__ import annotations

import json
import socket
import threading
import zlib
from typing import Any

import msgpack
import pytest

from benchmarks.payloads import sizes, update, update_data
from benchmarks.report import summarize, table
from benchmarks.wire import (
    DEFLATE_OFFER,
    MSGPACK_SUBPROTOCOL,
    Inflater,
    Offer,
    decode,
    negotiated,
    tcp_bytes_received,
)


class CIMultiDict:
    """The little of picows' response headers (a ``multidict.CIMultiDict``) that is read."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    def getall(self, name: str, default: list[str]) -> list[str]:
        return [self.headers[name.lower()]] if name.lower() in self.headers else default

    def get(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def deflate_message(compressor: Any, message: bytes) -> bytes:
    """Compress as RFC 7692 says a sender does: sync flush, the 4-byte tail removed."""
    data: bytes = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def test_an_offer_is_the_headers_browsers_send() -> None:
    assert Offer().headers == {}
    assert Offer(deflate=True).headers == {"Sec-WebSocket-Extensions": DEFLATE_OFFER}
    both = Offer(deflate=True, subprotocol=MSGPACK_SUBPROTOCOL)
    assert both.headers["Sec-WebSocket-Protocol"] == "jobupdates.v1.msgpack"
    assert both.describe() == "permessage-deflate + jobupdates.v1.msgpack"
    assert Offer().describe() == "nothing"


def test_the_servers_answer_is_read_from_its_headers() -> None:
    answer = CIMultiDict(
        {
            "sec-websocket-extensions": "permessage-deflate; server_no_context_takeover;"
            " client_no_context_takeover",
            "Sec-WebSocket-Protocol": MSGPACK_SUBPROTOCOL,
        }
    )
    agreed = negotiated(answer)
    assert agreed.deflate
    assert agreed.server_no_context_takeover
    assert agreed.label == "deflate (no context takeover) + jobupdates.v1.msgpack"
    takeover = negotiated(CIMultiDict({"Sec-WebSocket-Extensions": "permessage-deflate"}))
    assert takeover.label == "deflate"
    assert negotiated(CIMultiDict()).label == "none"


def test_messages_compressed_on_their_own_inflate_with_a_fresh_window() -> None:
    messages = [update("typical", n, 1.5).encode() for n in range(3)]
    frames = [
        deflate_message(zlib.compressobj(-1, zlib.DEFLATED, -zlib.MAX_WBITS), m) for m in messages
    ]
    inflater = Inflater(server_no_context_takeover=True)
    assert inflater.shared
    assert [inflater.inflate(f) for f in reversed(frames)] == messages[::-1]


def test_messages_compressed_with_context_takeover_inflate_in_order() -> None:
    compressor = zlib.compressobj(-1, zlib.DEFLATED, -zlib.MAX_WBITS)
    messages = [update("typical", 7, 1.5).encode()] * 2  # the second refers to the first
    frames = [deflate_message(compressor, m) for m in messages]
    assert len(frames[1]) < len(frames[0]) / 4
    inflater = Inflater(server_no_context_takeover=False)
    assert not inflater.shared
    assert [inflater.inflate(f) for f in frames] == messages


def test_json_text_and_msgpack_binary_decode_to_the_same_object() -> None:
    value = {"type": "job_update", "job_id": "j-1", "data": {"seq": 1, "t": 2.5}}
    assert decode(json.dumps(value).encode(), binary=False) == value
    assert decode(msgpack.packb(value), binary=True) == value
    with pytest.raises(ValueError, match="expected an object"):
        decode(b"[1]", binary=False)


def test_tcp_bytes_received_counts_what_came_off_the_wire() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        before = tcp_bytes_received(client)
        sender = threading.Thread(target=server.sendall, args=(b"x" * 100_000,))
        sender.start()
        received = 0
        while received < 100_000:
            received += len(client.recv(65536))
        sender.join()
        assert tcp_bytes_received(client) - before == 100_000
    finally:
        for sock in (client, server, listener):
            sock.close()


def test_typical_updates_are_a_few_hundred_bytes_and_the_same_in_every_run() -> None:
    measured = sizes("typical")
    assert 300 < measured["data_bytes"] < 500, measured
    assert update("typical", 5, 1.0) == update("typical", 5, 1.0)
    assert update_data("typical", 5, 1.0) != update_data("typical", 6, 1.0)
    assert update_data("pad", 5, 1.0, "xx") == {"seq": 5, "t": 1.0, "pad": "xx"}
    with pytest.raises(ValueError, match="unknown payload"):
        update_data("huge", 1, 1.0)


def run(
    target: str, round_: int, cpu: float, wire: float, negotiated: str, same: float | None = None
) -> dict[str, Any]:
    """One round of ``target``; ``same``: its CPU ratio against plain clients on its server."""
    plain = {"throughput": {"expected": 5, "delivered": 5, "lost": 0, "duplicates": 0}}
    same_server = {"cpu_ratio": same, "wire_ratio": 0.6, "blocks": {"plain": plain}}
    return {
        **({"same_server": same_server} if same else {}),
        "target": target,
        "round": round_,
        "flags": [],
        "connect": {"idle_bytes_per_connection": 20_000.0, "negotiated": {negotiated: 10}},
        "throughput": {
            "expected": 10,
            "delivered": 10,
            "lost": 0,
            "duplicates": 0,
            "server_cpu_us_per_delivery": cpu,
            "wire_bytes_per_delivery": wire,
        },
    }


def test_variants_are_compared_with_project_round_by_round_and_on_their_own_server() -> None:
    deflate = "deflate (no context takeover)"
    runs = [  # round 2 is twice as slow for both: paired, the ratio stays 1.1
        run("project", 1, 10.0, 500.0, "none"),
        run("project-deflate", 1, 11.0, 300.0, deflate, same=1.0),
        run("project", 2, 20.0, 500.0, "none"),
        run("project-deflate", 2, 22.0, 300.0, deflate, same=1.05),
        run("project", 3, 10.0, 500.0, "none"),
        run("project-deflate", 3, 11.0, 300.0, deflate, same=1.5),
    ]
    summary = summarize(runs, 10)
    variant = summary["targets"]["project-deflate"]
    assert variant["vs_project"]["server_cpu_us_per_delivery"] == pytest.approx(1.1)
    assert variant["vs_project"]["wire_bytes_per_delivery"] == pytest.approx(0.6)
    assert variant["negotiated"] == deflate
    assert summary["targets"]["project"]["vs_project"]["server_cpu_us_per_delivery"] is None
    assert variant["expected"] == 30 + 15, "expected the A/B/A blocks' deliveries counted"
    (goal,) = [g for g in summary["goals"] if g["goal"].startswith("permessage-deflate")]
    assert goal["met"] is True
    assert goal["measured"] == pytest.approx(1.05), "expected the same-server ratio judged"
    printed = table({"summary": summary})
    assert "| wire bytes/delivery (TCP payload, client side) | 500.0 | 300.0 |" in printed
    assert "|   x project (paired by round) | - | 1.10 |" in printed
    assert "|   x plain clients, same server (A/B/A) | - | 1.05 |" in printed


def test_the_compression_goal_is_not_judged_when_deflate_was_not_negotiated() -> None:
    runs = [
        run("project", 1, 10.0, 500.0, "none"),
        run("project-deflate", 1, 10.0, 500.0, "none", same=1.0),
    ]
    (goal,) = [g for g in summarize(runs, 10)["goals"] if g["goal"].startswith("permessage")]
    assert goal["met"] is None
