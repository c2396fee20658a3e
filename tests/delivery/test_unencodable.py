"""An update an older bridge recorded, that a connection's encoding cannot carry: skipped for
that connection (live or replayed, fast path or not), logged once, and the stream goes on."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgpack
import pytest

from jobupdates.delivery import unencodable
from jobupdates.delivery.fanout import job_update_send
from jobupdates.delivery.feed import Feed
from jobupdates.delivery.unencodable import UNENCODABLE, SkipLog, json_frame, skip_log
from jobupdates.history import ReplayEntry
from jobupdates.protocol.encodings import Encoding, Unencodable
from jobupdates.protocol.events import JobUpdateEvent
from jobupdates.protocol.positions import Position, with_position
from jobupdates.protocol.wire import text_frame

LOGGER = "jobupdates.delivery.unencodable"


def older_frame(data: Any, job_id: str = "j") -> str:
    """A ``job_update`` frame as a bridge before ``invalid_number`` encoded it."""
    message = {"type": "job_update", "job_id": job_id, "status": "processing", "data": data}
    return json.dumps(message, separators=(",", ":"))  # allow_nan: 1e400 became Infinity


DATA = {1: {"n": 1}, 2: {"x": float("inf")}, 3: {"x": 2**64}, 4: {"n": 4}}
"""An update per sequence number: 2 no encoding carries, 3 only JSON does."""


def entry(seq: int, job_id: str = "j") -> ReplayEntry:
    position = f"100-{seq}"
    frame = with_position(older_frame(DATA[seq], job_id), position)
    return ReplayEntry(Position.parse(position), job_id, frame)


def live(seq: int, job_id: str = "j") -> dict[str, Any]:
    """The layer's message for update ``seq``, with its plain frame (``job_update_send``)."""
    e = entry(seq, job_id)
    return job_update_send(JobUpdateEvent(e.frame, job_id, str(e.position)))


class Client:
    """A connection's ASGI send: every message it got, decoded strictly."""

    def __init__(self, encoding: Encoding) -> None:
        self.encoding = encoding
        self.got: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.receive(message["bytes"] if self.encoding.binary else message["text"].encode())

    def receive(self, data: bytes) -> int:
        if self.encoding.binary:
            self.got.append(msgpack.unpackb(data, raw=False))
        else:
            self.got.append(json.loads(data, parse_constant=strict))
        return 0

    def seqs(self) -> list[int]:
        return [next(iter(f["data"].values())) for f in self.got if f["type"] == "job_update"]


def strict(name: str) -> Any:
    raise AssertionError(f"a JSON client got {name}: not JSON")


@pytest.fixture(autouse=True)
def fresh_skip_log(monkeypatch):
    """Each test logs its skips afresh (the process's log remembers what it logged)."""
    monkeypatch.setattr(skip_log, "_logged", {})


def skipped_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.mark.parametrize(
    ("encoding", "expected"), [(Encoding.JSON, [1, 2**64, 4]), (Encoding.MSGPACK, [1, 4])]
)
async def test_a_replay_skips_what_the_encoding_cannot_carry_and_goes_on(
    encoding, expected, caplog
):
    client = Client(encoding)
    feed = Feed(client, encoding=encoding)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await feed.replay([entry(seq) for seq in (1, 2, 3, 4)])
        await feed.go_live()
    assert client.seqs() == expected
    assert (feed.position, feed.sent, feed.overflowed) == ("100-4", len(expected), False)
    lines = skipped_lines(caplog)
    assert len(lines) == 4 - len(expected), lines
    assert lines[0].startswith(
        f"skipped update '100-2' of job 'j' for {encoding.value} connections, which cannot "
        "carry it: 'expected JSON text, got the non-standard constant Infinity'"
    ), lines


@pytest.mark.parametrize(
    ("encoding", "expected"), [(Encoding.JSON, [1, 2**64, 4]), (Encoding.MSGPACK, [1, 4])]
)
async def test_live_and_held_updates_skip_it_too(encoding, expected):
    client = Client(encoding)
    feed = Feed(client, encoding=encoding)
    for seq in (1, 2):  # held during the replay
        assert await feed(live(seq)) is False
    await feed.go_live()
    for seq in (3, 4):
        await feed(live(seq))
    assert client.seqs() == expected
    assert feed.position == "100-4"


async def test_states_skip_it_too():
    client = Client(Encoding.MSGPACK)
    feed = Feed(client, jobs=["a", "b"], encoding=Encoding.MSGPACK)
    await feed.send_states([entry(3, "a"), entry(4, "b")])
    assert [(f["type"], f["job_id"]) for f in client.got] == [("job_state", "b")]


def unframed(frame: bytes) -> bytes:
    """The payload of an unmasked, uncompressed server frame."""
    length = frame[1]
    start = 2 if length < 126 else 4 if length == 126 else 10
    return frame[start:]


async def test_the_fast_path_checks_once_per_update_and_framing_and_sends_nothing(caplog):
    plain, packed = Client(Encoding.JSON), Client(Encoding.MSGPACK)
    feeds = [
        Feed(plain, write=lambda frame: plain.receive(unframed(frame))),
        Feed(packed, write=lambda frame: packed.receive(unframed(frame)), encoding=packed.encoding),
        Feed(Client(Encoding.MSGPACK), write=lambda frame: 0, encoding=Encoding.MSGPACK),
        Feed(Client(Encoding.JSON), write=lambda frame: 0, compressed=True),
        Feed(
            Client(Encoding.MSGPACK),
            write=lambda frame: 0,
            encoding=Encoding.MSGPACK,
            compressed=True,
        ),
    ]
    for feed in feeds:
        await feed.go_live()
    bad = live(2)
    assert bad["frame"] is UNENCODABLE, "expected the layer's JSON frame refused once"
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for message in (live(1), bad, live(3), live(4)):
            for feed in feeds:
                await feed(message)
    assert bad["frame.binary"] is UNENCODABLE, "expected the MessagePack frame refused once"
    assert bad["frame.deflate"] is bad["frame.binary.deflate"] is UNENCODABLE
    assert plain.seqs() == [1, 2**64, 4]
    assert packed.seqs() == [1, 4]
    assert [feed.sent for feed in feeds] == [3, 2, 2, 3, 2]
    assert len(skipped_lines(caplog)) == 3, "expected update 2 once per encoding, 3 once"


def test_json_frame_is_the_plain_frame_or_unencodable():
    text = with_position(older_frame({"n": 1}), "1-0")
    assert json_frame(text, "1-0", "j") == text_frame(text.encode())
    assert json_frame(older_frame({"x": float("-inf")}), "1-1", "j") is UNENCODABLE


def test_each_update_is_logged_once_per_encoding_and_its_values_escaped(caplog):
    log = SkipLog(remembered=2)
    error = Unencodable(Encoding.MSGPACK, "expected integers\nforged")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert log.skipped(error, "{}", "1-0", "a\nCRITICAL forged")
        assert not log.skipped(error, "{}", "1-0", "a")
        assert log.skipped(Unencodable(Encoding.JSON, "x"), "{}", "1-0", "a")
        assert log.skipped(error, "{}", "2-0", "b")
        assert log.skipped(error, "{}", "1-0", "a"), "expected the oldest forgotten past 2"
        assert log.skipped(error, '{"no":"position"}', None, None)
        assert not log.skipped(error, '{"no":"position"}', None, None)
    lines = skipped_lines(caplog)
    assert len(lines) == 5
    assert "\n" not in lines[0]
    assert "of job 'a\\nCRITICAL forged'" in lines[0]
    assert "'expected integers\\nforged'" in lines[0]
    assert lines[-1].startswith("skipped update None of job None for jobupdates.v1.msgpack")
    assert unencodable.REMEMBERED > 2
