"""Numbers both encodings carry: the range, and what a refusal says."""

from __future__ import annotations

import math

import msgpack
import pytest

from jobupdates.protocol.numbers import (
    MAX_INTEGER,
    MIN_INTEGER,
    carried,
    first_uncarried,
    number_detail,
)


def test_the_range_is_exactly_what_msgpack_packs():
    for number in (MIN_INTEGER, MAX_INTEGER, 0, -1, 2**53 + 1):
        assert carried(number)
        assert msgpack.unpackb(msgpack.packb(number)) == number
    for number in (MIN_INTEGER - 1, MAX_INTEGER + 1, 10**400):
        assert not carried(number)
        with pytest.raises(OverflowError):
            msgpack.packb(number)


@pytest.mark.parametrize(
    ("number", "expected"),
    [(1.5, True), (1e308, True), (-0.0, True), (math.inf, False), (-math.inf, False)],
)
def test_floats_must_be_finite(number, expected):
    assert carried(number) is expected
    assert carried(math.nan) is False


def test_the_first_number_not_carried_is_found_anywhere():
    assert first_uncarried({"a": [1, 2.5, {"b": True}], "c": "1e400"}) is None
    assert first_uncarried({"a": [1, {"b": [2, 2**64]}], "c": -(2**70)}) == 2**64
    assert first_uncarried([{"x": math.inf}]) == math.inf
    assert first_uncarried(2**64) == 2**64
    assert first_uncarried(True) is None, "a bool is not a number here"


def test_details_name_the_range_and_the_number():
    assert number_detail({"x": 2**64}) == (
        "expected numbers both JSON and MessagePack clients receive (finite; integers from "
        "-2**63 to 2**64-1), got the integer 18446744073709551616"
    )
    assert number_detail([math.inf]).endswith(
        "got inf (a float beyond the 64-bit range, such as 1e400)"
    )
    long = number_detail(-int("9" * 400))
    assert long.endswith("got the integer -99999999999999999999999999999... (400 digits)"), long
    assert number_detail({"all": "fine"}).endswith("got one that is not")
