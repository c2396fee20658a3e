"""The reconnect backoff: a pure generator, checked with deterministic randomness."""

from __future__ import annotations

import itertools
import random

import pytest

from jobupdates.ingest.backoff import backoff


def take(n, iterator):
    return list(itertools.islice(iterator, n))


def test_ceiling_doubles_up_to_the_cap():
    assert take(7, backoff(0.5, 5.0, rand=lambda: 1.0)) == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_full_jitter_scales_each_ceiling():
    draws = iter([0.5, 0.25, 0.0, 0.9])
    assert take(4, backoff(1.0, 10.0, rand=lambda: next(draws))) == [0.5, 0.5, 0.0, 7.2]


def test_seeded_sequence_is_reproducible_and_in_bounds():
    first = take(50, backoff(0.1, 3.0, rand=random.Random(7).random))
    assert first == take(50, backoff(0.1, 3.0, rand=random.Random(7).random))
    assert all(0 <= d <= 3.0 for d in first)
    assert first != take(50, backoff(0.1, 3.0, rand=random.Random(8).random))


def test_custom_factor():
    assert take(4, backoff(1, 100, factor=3, rand=lambda: 1.0)) == [1, 3, 9, 27]


@pytest.mark.parametrize(
    ("initial", "maximum", "factor"), [(0, 1, 2), (-1, 1, 2), (2, 1, 2), (1, 2, 0.5)]
)
def test_bad_arguments_raise_at_call_time(initial, maximum, factor):
    with pytest.raises(ValueError, match="expected"):
        backoff(initial, maximum, factor=factor)
