"""A connection's feed: job filters, replay, and the switch to live without gaps or duplicates."""

from __future__ import annotations

import json
import zlib

import msgpack
from prometheus_client import REGISTRY

from jobupdates.delivery.feed import Feed, framing_label
from jobupdates.history import ReplayEntry
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.encodings import Encoding
from jobupdates.protocol.positions import Position, ResetReason, with_position
from jobupdates.protocol.wire import Framing, text_frame


def entry(seq: int, job_id: str = "j") -> ReplayEntry:
    position = f"100-{seq}"
    frame = with_position(JobUpdate(job_id, "queued", {"seq": seq}).to_frame(), position)
    return ReplayEntry(Position.parse(position), job_id, frame)


def live(seq: int, job_id: str = "j") -> dict:
    e = entry(seq, job_id)
    return {
        "type": "websocket.send",
        "text": e.frame,
        "job_id": job_id,
        "position": str(e.position),
    }


class Socket:
    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.received = 0
        """Characters received in all."""

    async def __call__(self, message: dict) -> None:
        assert message["type"] == "websocket.send"
        self.frames.append(json.loads(message["text"]))
        self.received += len(message["text"])

    def seqs(self) -> list[int]:
        return [f["data"]["seq"] for f in self.frames]


def bounded_feed(max_backlog: int) -> tuple[Feed, Socket, list[str]]:
    """A feed whose client reads nothing: everything sent stays unread."""
    socket = Socket()
    reasons: list[str] = []
    feed = Feed(
        socket,
        backlog=lambda: socket.received,
        max_backlog=max_backlog,
        on_overflow=reasons.append,
    )
    return feed, socket, reasons


async def test_live_updates_wait_for_the_replay_then_follow_without_duplicates():
    socket = Socket()
    feed = Feed(socket)
    assert not feed.live
    await feed(live(3))  # arrived while the consumer read the history
    await feed(live(4))
    await feed.replay([entry(1), entry(2), entry(3)])
    assert socket.seqs() == [1, 2, 3]
    await feed.go_live()
    assert feed.live
    await feed(live(5))
    assert socket.seqs() == [1, 2, 3, 4, 5]
    assert feed.sent == 5


async def test_updates_arriving_while_held_ones_are_flushed_keep_their_order():
    socket = Socket()
    feed = Feed(socket)

    async def send_and_interleave(message):
        await socket(message)
        if len(socket.frames) == 1:
            await feed(live(9))  # arrives mid-flush

    feed.send = send_and_interleave
    await feed(live(7))
    await feed(live(8))
    await feed.go_live()
    assert socket.seqs() == [7, 8, 9]


async def test_job_subscriptions_filter_live_and_replayed_updates():
    socket = Socket()
    feed = Feed(socket, jobs=["a"])
    await feed.replay([entry(1, "a"), entry(2, "b"), entry(3, "a")])
    await feed.go_live()
    await feed(live(4, "b"))
    await feed(live(5, "a"))
    assert [(f["job_id"], f["data"]["seq"]) for f in socket.frames] == [
        ("a", 1),
        ("a", 3),
        ("a", 5),
    ]
    assert feed.position == "100-5"


async def test_states_are_sent_as_job_state_and_cover_older_held_updates():
    socket = Socket()
    feed = Feed(socket, jobs=["a"])
    feed.hold()
    await feed(live(5, "a"))  # recorded before the state was read: the state covers it
    await feed(live(6, "a"))
    await feed.send_states([entry(5, "a")])
    await feed.go_live()
    assert [(f["type"], f["data"]["seq"]) for f in socket.frames] == [
        ("job_state", 5),
        ("job_update", 6),
    ]


async def test_all_jobs_feed_unless_jobs_are_named():
    assert Feed(Socket()).wants("anything")
    assert not Feed(Socket(), jobs=["a"]).wants("b")
    assert not Feed(Socket(), jobs=[]).wants("a"), "no jobs left is not the all-jobs feed"


async def test_holding_is_bounded():
    reasons = []
    feed = Feed(Socket(), max_held=2, on_overflow=reasons.append)
    await feed(live(1))
    await feed(live(2))
    await feed(live(3))
    assert reasons == ["more than 2 updates arrived during a replay"]
    assert feed.overflowed


async def test_a_client_that_stops_reading_overflows_once_and_gets_nothing_more():
    feed, socket, reasons = bounded_feed(max_backlog=100)
    await feed.go_live()
    for seq in range(10):
        await feed(live(seq))
    assert len(socket.frames) == 2  # the second one crossed 100 bytes
    assert reasons == [f"{socket.received} bytes unread, over the limit of 100"]


async def test_messages_without_positions_are_never_dropped_as_covered():
    socket = Socket()
    feed = Feed(socket)
    await feed.replay([entry(3)])
    await feed({"type": "websocket.send", "text": json.dumps({"data": {"seq": 1}}), "job_id": "j"})
    await feed.go_live()
    assert socket.seqs() == [3, 1]


async def test_a_live_copy_arriving_after_go_live_of_a_replayed_update_is_dropped():
    """The bridge records an update, the replay reads it, then its live copy arrives."""
    socket = Socket()
    feed = Feed(socket)
    await feed.replay([entry(1), entry(2)])
    await feed.go_live()
    await feed(live(2))  # published after the replay read the history
    await feed(live(3))
    await feed(live(2))  # cannot happen (positions arrive in order), and the check has ended
    assert socket.seqs() == [1, 2, 3, 2]
    assert feed.last_replayed is None


async def test_a_live_copy_of_a_job_state_already_sent_is_dropped():
    socket = Socket()
    feed = Feed(socket, jobs=["a"])
    await feed.send_states([entry(5, "a")])
    await feed.go_live()
    await feed(live(5, "a"))
    await feed(live(6, "a"))
    assert [(f["type"], f["data"]["seq"]) for f in socket.frames] == [
        ("job_state", 5),
        ("job_update", 6),
    ]


async def test_replay_states_and_held_updates_stop_at_the_backlog_bound():
    feed, socket, reasons = bounded_feed(max_backlog=150)
    await feed(live(50))  # held during the replay
    await feed.replay([entry(seq) for seq in range(10)])
    assert socket.seqs() == [0, 1], "expected the replay to stop past the bound"
    assert feed.overflowed
    await feed.send_states([entry(20, "k")])
    await feed.go_live()
    await feed.send_reset(ResetReason.GAP_NOT_COVERED, "x")
    assert socket.seqs() == [0, 1], "expected nothing written once over the bound"
    assert len(reasons) == 1, reasons


async def test_held_updates_flushed_by_go_live_count_against_the_bound():
    feed, socket, reasons = bounded_feed(max_backlog=150)
    for seq in range(10):
        await feed(live(seq))
    await feed.go_live()
    assert socket.seqs() == [0, 1]
    assert reasons
    assert feed.overflowed


# Encodings and compression: frames built once per update and framing


def framed_live(seq: int) -> dict:
    message = live(seq)
    return {**message, "frame": text_frame(message["text"].encode())}


async def test_feeds_of_one_framing_share_the_frame_built_for_the_first():
    writes: dict[str, list[bytes]] = {"a": [], "b": [], "plain": []}

    def writer(name: str):
        return lambda frame: writes[name].append(frame) or 0

    feeds = [
        Feed(Socket(), write=writer("a"), compressed=True, encoding=Encoding.MSGPACK),
        Feed(Socket(), write=writer("b"), compressed=True, encoding=Encoding.MSGPACK),
        Feed(Socket(), write=writer("plain")),
    ]
    message = framed_live(1)
    for feed in feeds:
        await feed.go_live()
        assert await feed(message)
    [a], [b], [plain] = writes["a"], writes["b"], writes["plain"]
    assert a is b, "expected one frame built for both compressed MessagePack feeds"
    assert message["frame.binary.deflate"] is a
    assert plain is message["frame"]
    assert a[0] == 0x80 | 0x40 | 0x2, "expected FIN, RSV1 and the binary opcode"
    inflated = zlib.decompressobj(-15).decompress(a[2:] + b"\x00\x00\xff\xff")
    assert msgpack.unpackb(inflated) == json.loads(message["text"])


def frames_built() -> dict[str, float]:
    """``jobupdates_frames_built_total`` of this process, per framing."""
    return {
        label: REGISTRY.get_sample_value("jobupdates_frames_built_total", {"framing": label}) or 0.0
        for label in ("json", "json+deflate", "msgpack", "msgpack+deflate")
    }


async def test_each_frame_is_counted_once_when_built_never_per_connection():
    def writer(frame: bytes) -> int:
        return 0

    feeds = [Feed(Socket(), write=writer, compressed=True) for _ in range(5)]
    feeds += [Feed(Socket(), write=writer, encoding=Encoding.MSGPACK) for _ in range(3)]
    feeds.append(Feed(Socket(), write=writer))  # plain JSON: the layer's frame, not built here
    for feed in feeds:
        await feed.go_live()
    before = frames_built()
    for seq in range(4):
        message = framed_live(seq)
        for feed in feeds:
            assert await feed(message)
    after = frames_built()
    built = {label: after[label] - before[label] for label in after}
    assert built == {"json": 0, "json+deflate": 4, "msgpack": 4, "msgpack+deflate": 0}


def test_framing_labels():
    assert [framing_label(Framing(b, c)) for b in (False, True) for c in (False, True)] == [
        "json",
        "json+deflate",
        "msgpack",
        "msgpack+deflate",
    ]


async def test_a_msgpack_feed_sends_everything_else_as_msgpack():
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    feed = Feed(send, encoding=Encoding.MSGPACK)
    await feed.replay([entry(1)])
    await feed.send_reset(ResetReason.POSITION_TOO_OLD, "gone")
    feed.hold()
    await feed(live(2))
    await feed.go_live()
    assert all(set(m) == {"type", "bytes"} for m in sent), sent
    decoded = [msgpack.unpackb(m["bytes"]) for m in sent]
    assert [d["type"] for d in decoded] == ["job_update", "reset", "job_update"]
    assert feed.position == "100-2", "expected the position kept through the re-encoding"
