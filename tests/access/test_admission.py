"""Per-process connection limits."""

from __future__ import annotations

from jobupdates.access.admission import Admission
from jobupdates.protocol import ErrorCode


def test_per_user_then_total_limits():
    counts = Admission()
    limits = {"max_total": 3, "max_per_user": 2}
    assert counts.admit("u1", **limits) is None
    assert counts.admit("u1", **limits) is None
    assert counts.admit("u1", **limits) is ErrorCode.TOO_MANY_CONNECTIONS
    assert counts.admit("u2", **limits) is None
    assert counts.admit("u3", **limits) is ErrorCode.SERVER_FULL
    assert counts.admit(None, **limits) is ErrorCode.SERVER_FULL
    counts.release("u1")
    assert counts.admit(None, **limits) is None, "anonymous clients count toward the total only"
    assert (counts.total, dict(counts.per_user)) == (3, {"u1": 1, "u2": 1})
    counts.release("u1")
    assert "u1" not in counts.per_user
