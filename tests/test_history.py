"""The history stream and per-job state, against a real throwaway Redis."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from jobupdates.history import History, Recovery
from jobupdates.protocol import JobUpdate
from jobupdates.protocol.positions import Position, ResetReason


@pytest.fixture
async def client(redis_server):
    connection = aioredis.Redis.from_url(redis_server.url, socket_timeout=10)
    yield connection
    await connection.aclose()


def history(client, **overrides) -> History:
    options = dict(
        stream_key="h", state_prefix="s:", max_entries=1000, max_age_seconds=0, state_ttl_seconds=60
    )
    options.update(overrides)
    return History(client, **options)


def frame(job_id: str, status: str = "queued") -> str:
    return JobUpdate(job_id, status, {"n": 1}).to_frame()


async def record(store: History, job_id: str, text: str) -> str:
    """Record one update as the bridge does (a batch of one); return its position."""
    [position] = (await store.append_many([(job_id, text)])).positions
    return position


async def test_appends_give_increasing_positions_and_replays_what_follows(client):
    store = history(client)
    positions = [await record(store, f"j{i}", frame(f"j{i}")) for i in range(5)]
    assert [Position.parse(p) for p in positions] == sorted(Position.parse(p) for p in positions)
    recovery = await store.since(Position.parse(positions[1]))
    assert recovery.reset is None
    assert [e.job_id for e in recovery.entries] == ["j2", "j3", "j4"]
    assert [str(e.position) for e in recovery.entries] == positions[2:]
    assert json.loads(recovery.entries[0].frame) == {
        "type": "job_update",
        "job_id": "j2",
        "status": "queued",
        "data": {"n": 1},
        "position": positions[2],
    }


async def test_resuming_from_the_newest_position_replays_nothing(client):
    store = history(client)
    last = await record(store, "j", frame("j"))
    assert await store.since(Position.parse(last)) == Recovery(None, (), Position.parse(last))


async def test_a_position_older_than_the_history_is_a_reset(client):
    store = history(client, max_entries=10)
    first = await record(store, "j0", frame("j0"))
    for i in range(1, 400):  # approximate trimming drops whole blocks of entries
        await record(store, f"j{i}", frame(f"j{i}"))
    assert (await store.since(Position.parse(first))).reset is ResetReason.POSITION_TOO_OLD


async def test_age_limit_trims_old_entries(client):
    store = history(client, max_age_seconds=0.001)
    first = await record(store, "j0", frame("j0"))
    for i in range(1, 400):
        await record(store, f"j{i}", frame(f"j{i}"))
    assert await client.xlen("h") < 400
    assert (await store.since(Position.parse(first))).reset is ResetReason.POSITION_TOO_OLD


async def test_unknown_positions_are_a_reset(client):
    store = history(client)
    assert (
        await store.since(Position(1, 0))
    ).reset is ResetReason.UNKNOWN_POSITION  # empty history
    last = await record(store, "j", frame("j"))
    later = Position(Position.parse(last).ms + 1000, 0)
    assert (await store.since(later)).reset is ResetReason.UNKNOWN_POSITION


async def test_a_seen_position_lost_by_redis_is_a_reset_even_with_newer_entries(client):
    store = history(client)
    positions = [await record(store, "j", frame(f"j{i}")) for i in range(5)]
    await client.xdel("h", *positions[3:])  # a failover lost the newest two writes
    await record(store, "j", frame("after the failover"))
    seen = Position.parse(positions[4])
    assert (await store.since(seen, seen=True)).reset is ResetReason.POSITION_LOST
    pages = [page async for page in store.pages(seen, seen=True)]
    assert [page.reset for page in pages] == [ResetReason.POSITION_LOST]
    held = Position.parse(positions[2])
    replayed = await store.since(held, seen=True)
    assert replayed.reset is None
    assert [e.job_id for e in replayed.entries] == ["j"], "expected the entry after it"
    assert (await store.since(seen)).reset is None, "expected no check for a computed point"


async def test_a_write_after_redis_lost_the_writers_newest_records_the_loss(client, caplog):
    store = history(client)
    positions = (await store.append_many([("j", frame(f"j{i}")) for i in range(5)])).positions
    kept = (await store.append_many([("j", frame("next"))], after=positions[-1])).positions
    assert await client.get("h:lost") is None, "expected no loss: the history held it"
    # a failover to a replica that had received only the first four
    replicated = await client.xrange("h", "-", positions[3])
    await client.delete("h")
    for entry_id, fields in replicated:
        await client.xadd("h", fields, id=entry_id)
    with caplog.at_level("WARNING", logger="jobupdates.history"):
        [after] = (await store.append_many([("j", frame("after"))], after=kept[0])).positions
    assert (await client.get("h:lost")).decode() == kept[0]
    assert f"Redis lost updates up to {kept[0]}" in caplog.text
    held_before = Position.parse(positions[2])  # held, but what followed it is partly gone
    assert (await store.since(held_before, seen=True)).reset is ResetReason.POSITION_LOST
    replayed = await store.since(Position.parse(after), seen=True)
    assert replayed.reset is None, "expected a position after the loss to replay"
    assert (await store.since(held_before)).reset is None, "expected no check for a computed point"


async def test_a_lost_key_that_is_not_a_position_is_logged_and_ignored(client, caplog):
    store = history(client)
    positions = (await store.append_many([("j", frame(f"j{i}")) for i in range(3)])).positions
    await client.set("h:lost", "\x00garbage\n")
    with caplog.at_level("WARNING", logger="jobupdates.history"):
        replayed = await store.since(Position.parse(positions[0]), seen=True)
    assert replayed.reset is None
    assert len(replayed.entries) == 2
    assert "h:lost holds '\\x00garbage\\n', not a position; ignored" in caplog.text


async def test_a_write_to_an_emptied_history_records_the_loss_too(client):
    store = history(client)
    [position] = (await store.append_many([("j", frame("j"))])).positions
    await client.delete("h")  # Redis restarted without its data
    await store.append_many([("j", frame("again"))], after=position)
    assert (await client.get("h:lost")).decode() == position


async def test_states_hold_each_jobs_latest_update_with_a_ttl(client):
    store = history(client, state_ttl_seconds=30)
    await record(store, "a", frame("a", "queued"))
    last_a = await record(store, "a", frame("a", "completed"))
    await record(store, "b", frame("b", "failed"))
    entries = await store.states(["a", "missing", "b"])
    assert [e.job_id for e in entries] == ["a", "b"]
    assert str(entries[0].position) == last_a
    states = [json.loads(e.frame) for e in entries]
    assert [(s["job_id"], s["status"]) for s in states] == [("a", "completed"), ("b", "failed")]
    assert states[0]["position"] == last_a
    assert 0 < await client.ttl("s:a") <= 30
    assert await store.states([]) == []


async def test_append_many_records_in_order_in_one_script_call(client, monkeypatch):
    store = history(client)
    await record(store, "first", frame("first"))  # loads the script
    calls = []
    original = aioredis.Redis.execute_command

    async def counting(self, *args, **kwargs):
        calls.append(args[0])
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(aioredis.Redis, "execute_command", counting)
    positions = (
        await store.append_many([("a", frame("a")), ("b", frame("b")), ("a", frame("a"))])
    ).positions
    assert calls == ["EVALSHA"]
    assert [Position.parse(p) for p in positions] == sorted(Position.parse(p) for p in positions)
    replay = await store.since(Position.parse(positions[0]))
    assert [e.job_id for e in replay.entries] == ["b", "a"]
    assert str((await store.states(["a"]))[0].position) == positions[2]
    assert (await store.append_many([])).positions == ()


async def test_append_many_reloads_its_script_after_redis_forgot_it(client):
    """A restarted Redis has no scripts: the call loads it again (NOSCRIPT) and records."""
    store = history(client)
    await record(store, "a", frame("a"))
    await client.script_flush()
    [position] = (await store.append_many([("b", frame("b"))])).positions
    assert str((await store.states(["b"]))[0].position) == position


async def test_pages_read_the_history_a_page_at_a_time_sized_by_its_entries(client):
    from jobupdates.history import FIRST_PAGE, PAGE_BYTES

    store = history(client)
    small = [await record(store, "s", frame("s")) for _ in range(40)]
    pages = [page async for page in store.pages(Position.parse(small[0]))]
    assert all(page.reset is None for page in pages)
    assert [str(e.position) for page in pages for e in page.entries] == small[1:]
    assert len(pages[0].entries) == FIRST_PAGE, "expected a small first page"
    assert len(pages[1].entries) == len(small) - 1 - FIRST_PAGE, "then pages of many small ones"

    big_frame = JobUpdate("b", "queued", "x" * (PAGE_BYTES // 2)).to_frame()
    big = [await record(store, "b", big_frame) for _ in range(6)]
    pages = [page async for page in store.pages(Position.parse(big[0]))]
    assert sum(len(page.entries) for page in pages) == len(big) - 1
    assert len(pages[0].entries) == FIRST_PAGE
    assert all(len(page.entries) <= 1 for page in pages[1:]), "expected ~PAGE_BYTES a page"


async def test_pages_end_with_a_reset_when_the_history_is_trimmed_while_read(client):
    store = history(client)
    positions = [await record(store, f"j{i}", frame(f"j{i}")) for i in range(20)]
    pages = store.pages(Position.parse(positions[0]))
    first = await anext(pages)
    assert first.reset is None
    assert first.entries
    await client.xtrim(
        "h", minid=positions[-1], approximate=False
    )  # trimmed past what the reader got to
    second = await anext(pages)
    assert second.reset is ResetReason.POSITION_TOO_OLD
    with pytest.raises(StopAsyncIteration):
        await anext(pages)


async def test_bounds_are_the_oldest_and_newest_positions(client):
    store = history(client)
    assert await store.bounds() == (None, None)
    positions = [Position.parse(await record(store, "j", frame("j"))) for _ in range(3)]
    assert await store.bounds() == (positions[0], positions[-1])
