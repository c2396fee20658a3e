"""A server process's order of updates: deliver, drop a copy, or fill a gap first (pure)."""

from __future__ import annotations

import pytest

from jobupdates.protocol.positions import Position
from jobupdates.protocol.sequence import Sequencer, Verdict

P = Position


def test_the_first_event_is_delivered_when_nothing_is_known():
    assert Sequencer().admit(P(5, 0), P(4, 0)) is Verdict.DELIVER


@pytest.mark.parametrize(
    ("position", "prev", "verdict"),
    [
        (P(11, 0), P(10, 0), Verdict.DELIVER),  # the next one
        (P(11, 0), None, Verdict.DELIVER),  # from an older bridge: no predecessor named
        (P(12, 0), P(11, 0), Verdict.FILL),  # 11-0 was recorded but never arrived
        (P(10, 1), P(10, 0), Verdict.DELIVER),
        (P(10, 0), P(9, 0), Verdict.DUPLICATE),  # delivered already (re-sent, or filled)
        (P(9, 0), P(8, 0), Verdict.DUPLICATE),  # older: came late, after a fill delivered it
        (P(20, 0), P(3, 0), Verdict.DELIVER),  # the history lost its newest: not a gap
    ],
)
def test_an_event_is_judged_by_its_position_and_its_predecessor(position, prev, verdict):
    assert Sequencer(P(10, 0)).admit(position, prev) is verdict


def test_positions_delivered_only_move_forward():
    sequencer = Sequencer()
    sequencer.delivered(P(5, 0))
    sequencer.delivered(P(3, 0))
    assert sequencer.last == P(5, 0)
    sequencer.delivered(P(5, 1))
    assert sequencer.last == P(5, 1)


def test_interleaved_arrivals_end_up_in_position_order():
    # the two inputs' events arrived out of order: 111-1 before 111-0
    sequencer = Sequencer(P(110, 0))
    order = []
    for position, prev in [(P(111, 1), P(111, 0)), (P(111, 0), P(110, 0))]:
        verdict = sequencer.admit(position, prev)
        if verdict is Verdict.FILL:
            order.append(prev)  # read from the history first
            sequencer.delivered(prev)
        if verdict is not Verdict.DUPLICATE:
            order.append(position)
            sequencer.delivered(position)
    assert order == [P(111, 0), P(111, 1)]
