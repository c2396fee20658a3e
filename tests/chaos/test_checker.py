"""The chaos run's checker (harness/chaos/checker.py), on small synthetic logs: one
test per rule of docs/protocol.md it enforces, and what it must not count."""

from __future__ import annotations

from harness.chaos.checker import check
from harness.chaos.records import ClientLog, Connection, Fault, Frame, Update, parse_position

STOPPED = 1000.0


def sent(*numbers: int, accepted: bool = True, start: float = 10.0) -> list[Update]:
    """Updates numbered ``numbers``, sent one second apart from ``start`` + n."""
    return [Update(n, start + n, start + n + 0.01, accepted) for n in numbers]


def welcome(t: float, conn: int = 1) -> Frame:
    return Frame(t, conn, "welcome")


def update(publisher: str, n: int, t: float, position: str | None = None, conn: int = 1) -> Frame:
    """``publisher``'s update ``n`` read at ``t``; its position ``<1000 + n>-0`` unless given."""
    at = parse_position(position or f"{1000 + n}-0")
    return Frame(t, conn, "job_update", publisher, n, at)


def reset(t: float, reason: str = "gap_not_covered", conn: int = 1) -> Frame:
    return Frame(t, conn, "reset", detail=reason)


def client(*frames: Frame, name: str = "c00") -> ClientLog:
    log = ClientLog(name)
    log.connections.append(Connection(1, 8000, None, 0.0, opened=0.5, welcomed=1.0))
    for frame in frames:
        log.add(frame)
    return log


def test_a_clean_run_has_no_anomaly():
    log = client(welcome(1.0), *(update("pub", n, 20.0 + n) for n in range(3)))
    report = check({"pub": sent(0, 1, 2)}, [log], [], STOPPED)
    assert (report.lost, report.duplicated, report.reordered, report.regressions) == (0, 0, 0, 0)
    assert report.ok
    assert report.expected == 3
    assert report.deliveries == 3
    assert report.accepted == {"pub": 3}


def test_an_expected_update_never_delivered_is_lost_and_charged_to_the_fault_in_effect():
    log = client(welcome(1.0), update("pub", 0, 20.0), update("pub", 2, 22.0))
    faults = [Fault("bridge_kill", 5.0, 6.0), Fault("redis_restart", 10.5, 12.0)]
    report = check({"pub": sent(0, 1, 2)}, [log], faults, STOPPED)
    assert report.lost == 1
    assert not report.ok
    [anomaly] = report.anomalies
    assert (anomaly.rule, anomaly.publisher, anomaly.n) == ("lost", "pub", 1)
    assert anomaly.fault == "redis_restart"  # started before update 1 was accepted (11.01)
    assert report.by_fault["redis_restart"]["lost"] == 1
    assert report.per_client == {"c00": {"lost": 1}}


def test_updates_sent_before_the_first_welcome_or_not_accepted_are_not_expected():
    log = client(welcome(12.5), update("pub", 3, 20.0))
    updates = [*sent(0, 1, 2), *sent(3), *sent(4, accepted=False)]
    report = check({"pub": updates}, [log], [], STOPPED)
    assert report.expected == 1
    assert report.lost == 0


def test_updates_after_publishing_stopped_are_not_expected():
    log = client(welcome(1.0), update("pub", 0, 20.0))
    report = check({"pub": sent(0, 1)}, [log], [], stopped=10.5)
    assert report.lost == 0


def test_a_reset_covers_the_updates_between_the_deliveries_around_it():
    log = client(
        welcome(1.0),
        update("pub", 0, 20.0, "1000-0"),
        update("xadd", 0, 20.5, "1000-1"),
        reset(21.0),
        update("pub", 3, 23.0, "1003-0"),
    )
    report = check({"pub": sent(0, 1, 2, 3, 4), "xadd": sent(0, 1, 2)}, [log], [], STOPPED)
    # pub: 1 and 2 lie between 0 (before) and 3 (after); 4 is after 3: lost.
    # xadd: nothing after the reset, so every later one is covered.
    assert report.covered == 2 + 2
    assert report.lost == 1
    assert [(a.publisher, a.n) for a in report.anomalies] == [("pub", 4)]
    assert report.resets == {"gap_not_covered": 1}


def test_a_reset_before_any_delivery_covers_from_the_first_update():
    log = client(welcome(1.0), reset(1.5, "unknown_position"), update("pub", 2, 22.0))
    report = check({"pub": sent(0, 1, 2)}, [log], [], STOPPED)
    assert (report.covered, report.lost) == (2, 0)


def test_an_update_delivered_twice_is_duplicated_even_on_another_connection():
    log = client(
        welcome(1.0),
        update("pub", 0, 20.0, "1000-0"),
        update("pub", 1, 21.0, "1001-0"),
        welcome(22.0, conn=2),
        update("pub", 1, 22.1, "1002-0", conn=2),
    )
    report = check({"pub": sent(0, 1)}, [log], [Fault("server_term", 21.5, 23.0)], STOPPED)
    assert report.duplicated == 1
    assert (report.reordered, report.regressions, report.lost) == (0, 0, 0)
    [anomaly] = report.anomalies
    assert (anomaly.rule, anomaly.n, anomaly.fault) == ("duplicated", 1, "server_term")
    assert (
        anomaly.detail == "pub #1 at 1002-0 (connection 2); first pub #1 at 1001-0 (connection 1)"
    )


def test_a_lower_number_after_a_higher_one_is_reordered_per_publisher():
    log = client(
        welcome(1.0),
        update("pub", 0, 20.0, "1000-0"),
        update("pub", 2, 21.0, "1001-0"),
        update("xadd", 0, 21.5, "1001-1"),  # another publisher's numbers are its own
        update("pub", 1, 22.0, "1002-0"),
    )
    report = check({"pub": sent(0, 1, 2), "xadd": sent(0)}, [log], [], STOPPED)
    assert report.reordered == 1
    assert (report.duplicated, report.regressions, report.lost) == (0, 0, 0)
    assert report.anomalies[0].n == 1


def test_positions_compare_as_two_integers_across_publishers_and_connections():
    log = client(
        welcome(1.0),
        update("pub", 0, 20.0, "9-5"),
        update("xadd", 0, 20.5, "10-0"),  # as text, "10-0" < "9-5": still an increase
        welcome(21.0, conn=2),
        update("pub", 1, 21.5, "10-0", conn=2),  # equal: a regression
        update("xadd", 1, 22.0, "9-9", conn=2),  # lower: a regression
        update("pub", 2, 22.5, "10-1", conn=2),  # above the previous one (9-9): fine
    )
    report = check({"pub": sent(0, 1, 2), "xadd": sent(0, 1)}, [log], [], STOPPED)
    assert report.regressions == 2
    assert [(a.publisher, a.n) for a in report.anomalies] == [("pub", 1), ("xadd", 1)]
    assert (report.duplicated, report.reordered, report.lost) == (0, 0, 0)


def test_an_update_without_a_position_is_a_regression():
    log = client(welcome(1.0), Frame(20.0, 1, "job_update", "pub", 0, None))
    report = check({"pub": sent(0)}, [log], [], STOPPED)
    assert report.regressions == 1


def test_an_update_redis_did_not_accept_may_be_delivered():
    log = client(welcome(1.0), update("pub", 0, 20.0), update("pub", 1, 21.0))
    updates = [*sent(0), *sent(1, accepted=False)]
    report = check({"pub": updates}, [log], [], STOPPED)
    assert report.ok
    assert report.delivered_not_accepted == 1
    assert report.expected == 1


def test_clients_are_checked_each_against_its_own_stream():
    first = client(welcome(1.0), update("pub", 0, 20.0), update("pub", 1, 21.0), name="c00")
    second = client(welcome(1.0), update("pub", 1, 21.0), name="c01")
    report = check({"pub": sent(0, 1)}, [first, second], [], STOPPED)
    assert report.lost == 1
    assert report.per_client == {"c01": {"lost": 1}}
    assert report.deliveries == 3


def test_reconnects_disconnections_and_clients_never_welcomed_are_reported():
    log = client(welcome(1.0), update("pub", 0, 20.0))
    log.connections.append(Connection(2, 8001, "1000-0", 30.0, error="refused"))
    log.connections.append(Connection(3, 8001, "1000-0", 31.0, opened=31.1, welcomed=31.2))
    log.connections[0].code = 1012
    log.disconnected.append((29.5, 31.2))
    silent = ClientLog("c01")
    report = check({"pub": sent(0)}, [log, silent], [], STOPPED)
    assert report.reconnects == 1
    assert report.attempts == 3
    assert report.close_codes == {"1012": 1, "refused": 1}
    assert round(report.longest_disconnection, 3) == 1.7
    assert report.longest_disconnection_client == "c00"
    assert report.never_welcomed == ["c01"]
    assert report.lost == 0  # a client never welcomed expected nothing


def test_faults_are_counted_by_kind_and_anomalies_before_any_are_charged_to_none():
    log = client(welcome(1.0), update("pub", 0, 2.0), update("pub", 0, 3.0))
    faults = [Fault("bridge_stop", 5.0, 9.0), Fault("bridge_stop", 15.0, 19.0)]
    report = check({"pub": sent(0, start=1.5)}, [log], faults, STOPPED)
    assert report.faults == {"bridge_stop": 2}
    assert report.by_fault["bridge_stop"]["faults"] == 2
    assert report.by_fault["none"]["duplicated"] == 1


def test_the_client_log_keeps_every_field():
    frames = [
        welcome(1.0),
        update("xadd", 7, 2.0, "1732570000000-12", conn=3),
        Frame(3.0, 3, "reset", position=(5, 6), detail="position_too_old"),
        Frame(4.0, 3, "job_update", None, None, None),
        Frame(5.0, 3, "error", detail="server_restarting"),
    ]
    assert list(client(*frames).frames()) == frames
