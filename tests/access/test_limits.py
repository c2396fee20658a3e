"""Per-connection limits, driven with explicit times."""

from __future__ import annotations

import pytest

from jobupdates.access.limits import Strikes, TokenBucket


def test_bucket_allows_a_burst_then_the_rate():
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.4) is False  # 0.8 token
    assert bucket.take(0.5) is True  # 1.0 token
    assert bucket.take(0.5) is False
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False], "capped at burst"


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 5), (1, 0.5)])
def test_bucket_rejects_bad_parameters(rate, burst):
    with pytest.raises(ValueError, match="expected rate > 0 and burst >= 1"):
        TokenBucket(rate=rate, burst=burst)


def test_strikes_reach_the_limit():
    strikes = Strikes(limit=3)
    assert [strikes.add() for _ in range(4)] == [False, False, True, True]
