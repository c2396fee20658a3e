"""Waiting that a stop request cuts short: the bridge's loops share it."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["pause"]


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stopping`` is set meanwhile (or already)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
