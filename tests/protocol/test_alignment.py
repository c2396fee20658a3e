"""The standby ring and its alignment with the history's tail (pure)."""

from __future__ import annotations

import pytest

from jobupdates.protocol.alignment import Alignment, Ring, align, digest


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
    assert align(list("xaaa"), list("qxaa")) == Alignment(start=3, overlap=3)
    assert align(list("aba"), list("xab")).start == 2  # not 3: "a" alone is not the tail's end


@pytest.mark.parametrize(
    ("ring", "tail", "start"),
    [("aaa", "qaa", 2), ("aaa", "aaa", 3), ("abab", "abab", 4)],
)
def test_a_run_of_identical_payloads_that_matches_twice_is_a_gap_never_a_repeat(ring, tail, start):
    # "aaa" after "qaa": the ring's first "a" may be the tail's second or its third;
    # the largest match forwards nothing twice, and the gap says one may be lost
    alignment = align(list(ring), list(tail))
    assert (alignment.start, alignment.gap) == (start, True)
    assert "more than one place" in alignment.why


def test_a_ring_that_nothing_was_recorded_of_is_forwarded_whole():
    assert align(list("abc"), [], covered=True) == Alignment(start=0, overlap=0)
    assert align(list("def"), list("abc"), covered=True) == Alignment(start=0, overlap=0)


def test_nothing_recorded_of_an_overlapping_ring_is_no_gap():
    alignment = align(list("cde"), list("abc"))
    assert (alignment.start, alignment.overlap, alignment.gap) == (1, 1, False)


@pytest.mark.parametrize(("ring", "tail"), [("def", "abc"), ("", "abc"), ("abc", ""), ("", "")])
def test_a_ring_that_cannot_show_it_covers_the_old_bridges_gap_reports_one(ring, tail):
    # the ring overflowed, or the standby subscribed late: "x" and what follows are missing
    alignment = align(list(ring), list(tail), covered=False)
    assert (alignment.start, alignment.gap) == (0, True)
    assert f"none of the {len(ring)}" in alignment.why


def test_a_hole_in_the_history_is_a_gap_and_what_it_holds_is_not_forwarded_again():
    # the old bridge missed "b" but recorded "c": "b" cannot come before "c" any more
    alignment = align(list("abcd"), list("xac"), covered=True)
    assert (alignment.start, alignment.gap) == (3, True)
    assert "skipped" in alignment.why


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
