"""The shared messages' schemas: the layer event and the bridge report."""

from __future__ import annotations

import json
import math
import re

import pytest

from jobupdates.protocol.events import (
    JOB_UPDATE_EVENT,
    RECEIVED_AT,
    JobUpdateEvent,
    MalformedEvent,
)
from jobupdates.protocol.reports import BridgeReport, BridgeState, MalformedReport, RecentReject

# --- the layer event -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "update",
    [
        JobUpdateEvent('{"type":"job_update"}', "j-1", "1732570000000-0", 1732570000.5),
        JobUpdateEvent('{"type":"job_update"}', "j-1", "1732570000000-1", 5.0, "1732570000000-0"),
        JobUpdateEvent('{"type":"reset"}', None, "1732570000000-2", None, "1-0", gap=True),
        JobUpdateEvent('{"type":"job_update"}'),  # not recorded, no receipt time
    ],
)
def test_event_round_trips(update):
    event = update.to_event()
    assert event["type"] == JOB_UPDATE_EVENT
    assert JobUpdateEvent.from_event(event) == update


def test_event_is_what_the_bridge_sends():
    event = JobUpdateEvent("t", "j", "1-1", 5.0, "1-0").to_event()
    assert event == {
        "type": "job.update",
        "text": "t",
        "job_id": "j",
        "position": "1-1",
        RECEIVED_AT: 5.0,
        "prev": "1-0",
        "gap": False,
    }


def test_an_event_from_an_older_bridge_has_no_predecessor_and_is_no_gap():
    event = {"type": JOB_UPDATE_EVENT, "text": "t", "job_id": "j", "position": "1-0"}
    assert JobUpdateEvent.from_event(event) == JobUpdateEvent("t", "j", "1-0", prev=None, gap=False)


def test_event_fields_other_than_text_may_be_absent_and_unknown_keys_are_ignored():
    update = JobUpdateEvent.from_event({"type": JOB_UPDATE_EVENT, "text": "t", "new": [1]})
    assert update == JobUpdateEvent("t", None, None, None)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"text": "t"}, "expected a 'job.update' event, got type None"),
        ({"type": "job.other", "text": "t"}, "expected a 'job.update' event, got type 'job.other'"),
        (
            {"type": JOB_UPDATE_EVENT},
            "expected a 'job.update' event with a str 'text', got keys ['type']",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": 5},
            "expected a 'job.update' event with a str 'text', got 'text' = 5",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": b"t"},
            "expected a 'job.update' event with a str 'text', got 'text' = b't'",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": "t", "job_id": ["j"]},
            "expected 'job_id' of a 'job.update' event to be a str or absent, got ['j']",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": "t", "position": b"1-0"},
            "expected 'position' of a 'job.update' event to be a str or absent, got b'1-0'",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": "t", "position": 7},
            "expected 'position' of a 'job.update' event to be a str or absent, got 7",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": "t", "prev": 7},
            "expected 'prev' of a 'job.update' event to be a str or absent, got 7",
        ),
        (
            {"type": JOB_UPDATE_EVENT, "text": "t", "gap": 1},
            "expected 'gap' of a 'job.update' event to be a bool or absent, got 1",
        ),
    ],
)
def test_malformed_events_say_what_was_expected_and_what_came(event, expected):
    with pytest.raises(MalformedEvent, match=f"^{re.escape(expected)}$"):
        JobUpdateEvent.from_event(event)


def test_malformed_event_messages_are_loggable():
    with pytest.raises(MalformedEvent) as error:
        JobUpdateEvent.from_event(
            {"type": JOB_UPDATE_EVENT, "text": "t", "job_id": [("x\n",) * 500]}
        )
    assert "\n" not in str(error.value)
    assert "more characters" in str(error.value)
    assert issubclass(MalformedEvent, ValueError)


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [(12.5, 12.5), (12, 12.0), (None, None), ("12", None), (True, None), (0, None), (-1.0, None)],
)
def test_a_receipt_time_that_is_not_a_positive_number_is_absent(received_at, expected):
    event = {"type": JOB_UPDATE_EVENT, "text": "t", RECEIVED_AT: received_at}
    assert JobUpdateEvent.from_event(event).received_at == expected


def test_a_nan_receipt_time_is_absent():
    event = {"type": JOB_UPDATE_EVENT, "text": "t", RECEIVED_AT: math.nan}
    assert JobUpdateEvent.from_event(event).received_at is None


# --- the bridge report ---------------------------------------------------------------------

FULL = BridgeReport(
    bridge="host:12:abcdef",
    state=BridgeState.SUBSCRIBED,
    reported_at=300.0,
    role="standby",
    takeovers=2,
    started_at=100.0,
    received=7,
    forwarded=4,
    forwarded_by_status={"completed": 3, "failed": 1},
    rejected={"invalid_json": 2},
    recent_rejects=(RecentReject(290.0, "invalid_json"), RecentReject(291.5, "invalid_json")),
    reconnects=1,
    last_message_at=295.0,
    lag_seconds=0.25,
)


def test_report_round_trips():
    assert BridgeReport.from_json(FULL.to_json()) == FULL
    assert BridgeReport.from_json(FULL.to_json().encode()) == FULL  # as Redis returns it


def test_report_json_carries_the_state_as_its_wire_value():
    document = json.loads(FULL.to_json())
    assert document["state"] == "subscribed"
    assert document["recent_rejects"][0] == {"at": 290.0, "reason": "invalid_json"}


def test_state_is_compared_with_the_enum():
    assert FULL.subscribed
    for state in set(BridgeState) - {BridgeState.SUBSCRIBED}:
        assert not BridgeReport("b", state, 1.0).subscribed
    decoded = BridgeReport.from_json('{"bridge":"b","state":"subscribed","reported_at":1}')
    assert decoded.subscribed
    assert decoded.state == BridgeState.SUBSCRIBED


def test_a_report_from_an_older_version_takes_the_defaults():
    older = {"bridge": "b", "state": "backing_off", "reported_at": 10, "received": 3}
    report = BridgeReport.from_json(json.dumps(older))
    assert report == BridgeReport("b", "backing_off", 10.0, received=3)
    assert (report.role, report.takeovers, report.started_at) == ("active", 0, None)
    assert (report.forwarded_by_status, report.rejected, report.recent_rejects) == ({}, {}, ())
    assert (report.last_message_at, report.lag_seconds) == (None, 0.0)


def test_a_report_from_a_newer_version_keeps_what_it_knows():
    newer = json.loads(FULL.to_json())
    newer["state"] = "draining"  # a state this version does not know
    newer["shards"] = [1, 2]
    newer["recent_rejects"][0]["detail"] = "more"
    report = BridgeReport.from_json(json.dumps(newer))
    assert report.state == "draining"
    assert not report.subscribed
    assert report.recent_rejects == FULL.recent_rejects
    assert report.forwarded_by_status == FULL.forwarded_by_status


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{", "expected a bridge report (a JSON object), got '{' (Expecting"),
        (b"\xff{}", "expected a bridge report (a JSON object), got b'\\xff{}'"),
        ("[1, 2]", "expected a bridge report (a JSON object), got [1, 2]"),
        ('{"state": "subscribed", "reported_at": 1}', "with 'bridge', got keys ['reported_at'"),
        ('{"bridge": "b", "reported_at": 1}', "with 'state', got keys ['bridge', 'reported_at']"),
        ('{"bridge": "b", "state": "s"}', "with 'reported_at', got keys ['bridge', 'state']"),
    ],
)
def test_garbage_is_not_a_report_and_says_why(raw, expected):
    with pytest.raises(MalformedReport, match=re.escape(expected)):
        BridgeReport.from_json(raw)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("bridge", 5, "a str, got 5"),
        ("state", None, "a str, got None"),
        ("reported_at", "1", "a number, got '1'"),
        ("received", 1.5, "an int, got 1.5"),
        ("takeovers", True, "an int, got True"),
        ("started_at", "x", "a number or null, got 'x'"),
        ("lag_seconds", None, "a number, got None"),
        ("rejected", {"a": "2"}, "an object of ints, got {'a': '2'}"),
        ("forwarded_by_status", [1], "an object of ints, got [1]"),
        ("recent_rejects", [{"at": 1}], 'a list of {"at": number, "reason": str}, got [{'),
        ("recent_rejects", {}, 'a list of {"at": number, "reason": str}, got {}'),
    ],
)
def test_a_field_of_the_wrong_type_says_which(key, value, expected):
    document = {**json.loads(FULL.to_json()), key: value}
    prefix = f"expected {key!r} of a bridge report to be "
    with pytest.raises(MalformedReport, match=re.escape(prefix + expected)):
        BridgeReport.from_json(json.dumps(document))


def test_deep_garbage_is_not_a_report():
    with pytest.raises(MalformedReport, match="expected a bridge report"):
        BridgeReport.from_json("[" * 100_000)
