"""One object per running event loop."""

from __future__ import annotations

import asyncio

import pytest

from jobupdates.per_loop import PerLoop


def test_each_loop_gets_its_own_object_made_once():
    made: list[object] = []

    def factory() -> object:
        made.append(object())
        return made[-1]

    per_loop = PerLoop(factory)

    async def twice() -> tuple[object, object]:
        return per_loop(), per_loop()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1]
    assert second[0] is second[1]
    assert first[0] is not second[0]
    assert len(made) == 2


def test_outside_a_loop_it_says_so():
    with pytest.raises(RuntimeError, match="no running event loop"):
        PerLoop(object)()
