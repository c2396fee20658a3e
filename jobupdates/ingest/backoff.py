"""Capped exponential backoff with full jitter, as a pure generator."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["backoff"]


def backoff(
    initial: float,
    maximum: float,
    *,
    factor: float = 2.0,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield the delays, in seconds, to wait before each retry.

    The n-th delay (from 0) is drawn uniformly from ``[0, min(maximum,
    initial * factor**n)]`` ("full jitter"), so that many clients that lost
    the same server do not come back in step. The ceiling stops growing once
    it reaches ``maximum``; the generator never ends.

    Args:
        initial: The ceiling of the first delay, in seconds (> 0).
        maximum: The largest ceiling, in seconds (>= ``initial``).
        factor: How much the ceiling grows after each retry (>= 1).
        rand: A source of floats in ``[0, 1)``; inject one to make it deterministic.

    Raises:
        ValueError: If the arguments are out of range.
    """
    if not 0 < initial <= maximum:
        raise ValueError(
            f"expected 0 < initial <= maximum, got initial={initial}, maximum={maximum}"
        )
    if factor < 1:
        raise ValueError(f"expected factor >= 1, got {factor}")
    return _delays(initial, maximum, factor, rand)


def _delays(
    initial: float, maximum: float, factor: float, rand: Callable[[], float]
) -> Iterator[float]:
    ceiling = initial
    while True:
        yield ceiling * rand()
        ceiling = min(maximum, ceiling * factor)
