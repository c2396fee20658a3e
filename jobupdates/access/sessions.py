"""The session's user, looked up for many handshakes in one thread hop.

A session cookie's user is read with Django's own machinery (the configured
``SESSION_ENGINE``, then ``django.contrib.auth.get_user``, which loads the
user row and checks the session hash), in the database thread. Each trip to
that thread costs about 65 us of CPU besides the lookup (measured:
docs/performance.md), as much as a fifth of the lookup itself. In a
reconnect storm many handshakes wait for it at once: :class:`SessionUsers`
takes every session asked for while a trip is under way into the next trip,
so the storm pays for one hop per batch. A lone handshake goes at once.
"""

from __future__ import annotations

import asyncio
from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser

from jobupdates.per_loop import PerLoop

__all__ = ["SessionUsers", "session_user", "session_users"]


class _SessionOnly:
    """What :func:`django.contrib.auth.get_user` reads of a request: its session."""

    __slots__ = ("session",)

    def __init__(self, session: Any) -> None:
        self.session = session


def session_user(session_key: str | None) -> Any:
    """The user of the session ``session_key`` (loaded once, with the configured
    engine), or an ``AnonymousUser``; what Channels' session and auth middleware
    find, without keeping the session."""
    if not session_key:
        return AnonymousUser()
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return auth.get_user(_SessionOnly(store))  # type: ignore[arg-type]


def _users(keys: list[str]) -> list[tuple[Any, BaseException | None]]:
    """Each key's user, or the error its lookup raised (the others still go)."""
    found: list[tuple[Any, BaseException | None]] = []
    for key in keys:
        try:
            found.append((session_user(key), None))
        except Exception as exc:
            found.append((None, exc))
    return found


class SessionUsers:
    """``await users(key)``: the session's user; the lookups asked for while a trip
    to the database thread is under way share the next one."""

    __slots__ = ("_next", "_running")

    def __init__(self) -> None:
        self._next: list[tuple[str, asyncio.Future[Any]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, key: str) -> Any:
        loop = asyncio.get_running_loop()
        found: asyncio.Future[Any] = loop.create_future()
        self._next.append((key, found))
        if self._running is None or self._running.done():
            self._running = loop.create_task(self._run())
        return await found

    async def _run(self) -> None:
        batch: list[tuple[str, asyncio.Future[Any]]] = []
        try:
            while self._next:
                batch, self._next = self._next, []
                results = await database_sync_to_async(_users)([key for key, _ in batch])
                for (_, found), (user, error) in zip(batch, results, strict=True):
                    if found.done():  # its handshake was cancelled
                        continue
                    if error is None:
                        found.set_result(user)
                    else:
                        found.set_exception(error)
        except BaseException as exc:  # the trip itself failed, or the loop is closing
            waiting, self._next = [*batch, *self._next], []
            for _, found in waiting:
                if found.done():
                    continue
                if isinstance(exc, Exception):
                    found.set_exception(exc)
                else:
                    found.cancel()
            if not isinstance(exc, Exception):
                raise


session_users = PerLoop(SessionUsers)
"""The running event loop's :class:`SessionUsers` (one per server process)."""
