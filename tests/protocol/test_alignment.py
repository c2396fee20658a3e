"""The standby ring and its alignment with the history's tail (pure)."""

from __future__ import annotations

import pytest

from jobupdates.protocol.alignment import Ring, align, digest


def test_a_digest_is_short_hex_and_tells_payloads_apart():
    assert len(digest(b"a")) == 24
    assert digest(b"a") == digest(b"a") != digest(b"b")


@pytest.mark.parametrize(
    ("ring", "tail", "start"),
    [
        ("abcd", "xyz", 0),  # nothing recorded: no overlap (a gap, below)
        ("abcd", "xyabcd", 4),  # all recorded
        ("abcd", "xyab", 2),  # partly recorded
        ("abcd", "ab", 2),  # the tail is shorter than the ring
        ("abcd", "a", 1),
        ("cdef", "abcdef", 4),  # the ring is shorter than the tail
        ("", "abc", 0),
    ],
)
def test_the_ring_aligns_on_the_histories_newest_entries(ring, tail, start):
    assert align(list(ring), list(tail)).start == start


def test_repeated_identical_payloads_align_on_the_sequence_not_a_set():
    # the old bridge recorded two of three identical updates: one is left
    assert align(list("xaaa"), list("qxaa")).start == 3
    assert align(list("aaa"), list("qaa")).start == 2
    assert align(list("aaa"), list("aaa")).start == 3
    assert align(list("aba"), list("xab")).start == 2  # not 3: "a" alone is not the tail's end


def test_an_empty_history_takes_the_whole_ring_without_a_gap():
    alignment = align(list("abc"), [])
    assert (alignment.start, alignment.gap) == (0, False)


def test_nothing_recorded_of_an_overlapping_ring_is_no_gap():
    alignment = align(list("cde"), list("abc"))
    assert (alignment.start, alignment.overlap, alignment.gap) == (1, 1, False)


def test_a_ring_that_does_not_reach_the_histories_newest_entry_reports_a_gap():
    # the ring overflowed, or the standby was disconnected: "x" and what follows are missing
    alignment = align(list("def"), list("abc"))
    assert (alignment.start, alignment.gap) == (0, True)
    assert "none of the 3" in alignment.why


def test_an_empty_ring_reports_a_gap_only_if_it_subscribed_after_the_newest_entry():
    assert align([], list("abc"), since=20.0, newest_at=10.0).gap
    assert not align([], list("abc"), since=5.0, newest_at=10.0).gap
    assert not align([], [], since=20.0, newest_at=None).gap


def test_the_ring_is_bounded_in_count_and_age_but_keeps_its_newest_entry():
    ring: Ring[int] = Ring(max_seconds=10, max_messages=3)
    ring.restart(0.0)
    for n in range(5):
        ring.add(str(n), n, float(n))
    assert [entry.digest for entry in ring] == ["2", "3", "4"]
    assert ring.dropped == 2
    ring.add("5", 5, 100.0)
    assert [entry.digest for entry in ring] == ["5"]
    ring.trim(1000.0)
    assert [entry.digest for entry in ring] == ["5"], "the newest entry stays for alignment"
    ring.mark_recorded()
    assert [entry.item for entry in ring] == [None]
    ring.restart(2000.0)
    assert (len(ring), ring.since, ring.dropped) == (0, 2000.0, 0)


def test_a_long_ring_aligns_in_linear_time():
    ring = [str(n) for n in range(10_000)]
    assert align(ring, [str(n) for n in range(-5, 6000)]).start == 6000
    assert align(ring, ["x"] * 10_000).gap
