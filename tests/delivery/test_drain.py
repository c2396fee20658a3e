"""The drain's schedule: closes spread evenly over JOBUPDATES_DRAIN_SECONDS (pure)."""

from __future__ import annotations

import pytest

from jobupdates.delivery.drain import CloseSchedule, restarting_message


def test_closes_are_spread_evenly_first_at_once_last_before_the_end():
    schedule = CloseSchedule(4, 2.0)
    assert [schedule.at(i) for i in range(4)] == [0.0, 0.5, 1.0, 1.5]
    assert [schedule.due(t) for t in (0.0, 0.49, 0.5, 1.2, 1.5, 1.99, 2.0, 9.0)] == [
        1,
        1,
        2,
        3,
        4,
        4,
        4,
        4,
    ]


def test_each_client_is_due_at_its_time_and_never_earlier():
    schedule = CloseSchedule(200, 5.0)
    for index in range(200):
        assert schedule.due(schedule.at(index)) >= index + 1
        if index:
            assert schedule.due(schedule.at(index) - 1e-6) <= index


def test_zero_seconds_closes_everyone_at_once():
    assert CloseSchedule(1000, 0.0).due(0.0) == 1000


def test_no_clients_is_nothing_to_close():
    assert CloseSchedule(0, 5.0).due(0.0) == 0
    assert CloseSchedule(0, 0.0).due(10.0) == 0


def test_due_never_goes_backwards_nor_past_the_total():
    schedule = CloseSchedule(7, 3.0)
    counts = [schedule.due(t / 100) for t in range(-10, 400)]
    assert counts == sorted(counts)
    assert counts[0] == 1
    assert counts[-1] == 7


@pytest.mark.parametrize(("total", "seconds"), [(-1, 5.0), (3, -0.1)])
def test_negative_inputs_are_refused(total, seconds):
    with pytest.raises(ValueError, match="expected a non-negative"):
        CloseSchedule(total, seconds)


def test_index_outside_the_clients_is_refused():
    with pytest.raises(ValueError, match=r"expected a client index in \[0, 2\), got 2"):
        CloseSchedule(2, 1.0).at(2)


def test_message_tells_the_client_to_resume_with_since():
    assert "since=" in restarting_message(5.0)
    assert "5 s" in restarting_message(5.0)
    assert "spread" not in restarting_message(0.0)
