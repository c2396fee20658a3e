"""A bridge's counters: the address it listens on, and the failovers it saw."""

from __future__ import annotations

from jobupdates.ingest.counters import BridgeStats


def test_a_changed_address_is_a_failover_and_the_first_or_the_same_is_not():
    stats = BridgeStats()
    assert stats.listening_at("10.0.0.1:6379") is False
    assert stats.listening_at("10.0.0.1:6379") is False  # a reconnect to the same primary
    assert stats.listening_at("10.0.0.2:6379") is True
    assert (stats.primary, stats.failovers) == ("10.0.0.2:6379", 1)
