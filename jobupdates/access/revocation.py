"""Nothing outlives its authority: every open connection is judged again, in two ways.

Each server process keeps, in one :class:`Authorities` per event loop, the
:class:`~jobupdates.protocol.authority.Grant` of every connection it admitted
(with a user), indexed by user and by session. Then:

* **Events act at once.** A change of authority anywhere (a logout, a save of a
  user, a change of permissions: :mod:`jobupdates.access.signals`; or an
  explicit :func:`jobupdates.revoke` / :func:`jobupdates.reauthorize`) is sent
  to the channel-layer group :data:`AUTHORITY_GROUP`, which every server
  process joins with one channel: a ``revoke`` closes the connections named,
  a ``reauthorize`` judges them again.
* **A sweep catches what no signal sees** (``QuerySet.update``, raw SQL,
  another service's writes, session expiry, an authorizer's own data): every
  ``JOBUPDATES_REAUTH_SECONDS / 2`` every connection of the process is judged
  again, all at once (:func:`jobupdates.access.revalidation.gather`: a few
  queries per 500 connections, in one worker-thread hop), so none outlives a
  revoked authority by more than ``JOBUPDATES_REAUTH_SECONDS``.

What happens to a connection is the consumer's: :meth:`Revocable.revoked`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from jobupdates.access.revalidation import gather
from jobupdates.conf import conf
from jobupdates.monitoring import metrics
from jobupdates.per_loop import PerLoop
from jobupdates.protocol.authority import (
    Action,
    AuthorityEvent,
    Grant,
    MalformedAuthorityEvent,
    Op,
    Verdict,
    judge,
)
from jobupdates.protocol.logs import loggable

__all__ = ["AUTHORITY_GROUP", "Authorities", "Revocable", "authorities"]

logger = logging.getLogger(__name__)

AUTHORITY_GROUP = "jobupdates.authority"
"""The channel-layer group every server process joins for :class:`AuthorityEvent`\\ s."""
RETRY_SECONDS = 1.0
"""Pause before the event listener joins again after its channel layer failed."""


class Revocable(Protocol):
    """A connection whose authority can end (the consumer)."""

    client_id: str

    async def revoked(self, verdict: Verdict) -> None:
        """Close (4401, 4403) or narrow the connection as ``verdict`` says."""

    async def disconnected_by_staff(self, by: str) -> None:
        """Close the connection as a staff member asked (4000)."""


@dataclass
class _Entry:
    grant: Grant
    connection: Revocable


class Authorities:
    """The grants of one server process's connections, judged again on events and sweeps."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self._by_user: dict[str, set[str]] = {}
        self._by_session: dict[str, set[str]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        """Set while this process receives the authority events sent to every process."""
        self.sweeps = 0
        self.last_sweep_seconds = 0.0

    def add(self, connection: Revocable, grant: Grant) -> None:
        """Keep ``connection``'s grant until :meth:`remove`; start watching if needed."""
        client = connection.client_id
        self.entries[client] = _Entry(grant, connection)
        self._by_user.setdefault(grant.user, set()).add(client)
        if grant.session is not None:
            self._by_session.setdefault(grant.session, set()).add(client)
        if not self._tasks:
            self._start()

    def subscribed(self, client: str, jobs: Iterable[str] | None) -> None:
        """The connection now receives ``jobs`` (None: every job)."""
        entry = self.entries.get(client)
        if entry is not None:
            grant = entry.grant
            entry.grant = Grant(
                grant.user,
                grant.session,
                grant.auth_hash,
                None if jobs is None else frozenset(jobs),
            )

    def remove(self, client: str) -> None:
        """Forget a connection (it closed)."""
        entry = self.entries.pop(client, None)
        if entry is None:
            return
        _discard(self._by_user, entry.grant.user, client)
        if entry.grant.session is not None:
            _discard(self._by_session, entry.grant.session, client)

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._listen()))
        if conf.REAUTH_SECONDS > 0:
            self._tasks.append(loop.create_task(self._sweep_forever(conf.REAUTH_SECONDS / 2)))

    async def _sweep_forever(self, interval: float) -> None:
        while True:
            # a period, not a wait for an event; a long sweep shortens the next pause
            await asyncio.sleep(max(interval - self.last_sweep_seconds, 0.0))
            try:
                await self.sweep()
            except Exception as exc:  # the next sweep runs whatever this one did
                logger.warning("re-validation sweep failed (%s: %s)", type(exc).__name__, exc)

    async def sweep(self) -> int:
        """Judge every connection again; return how many were closed or narrowed."""
        started = time.monotonic()
        acted = await self.recheck(list(self.entries), "the sweep")
        self.last_sweep_seconds = time.monotonic() - started
        self.sweeps += 1
        metrics.REAUTH_SWEEP_SECONDS.observe(self.last_sweep_seconds)
        return acted

    async def recheck(self, clients: list[str], source: str) -> int:
        """Judge ``clients`` again, with one database hop; act on what changed.
        ``source`` says what asked (for the log)."""
        entries = [(client, self.entries[client]) for client in clients if client in self.entries]
        if not entries:
            return 0
        facts = await database_sync_to_async(gather)([entry.grant for _, entry in entries])
        acted = 0
        for client, entry in entries:
            verdict = judge(entry.grant, facts)
            if verdict.action is not Action.KEEP and self.entries.get(client) is entry:
                acted += 1
                await self._act(entry, verdict, source)
        return acted

    async def _act(self, entry: _Entry, verdict: Verdict, source: str) -> None:
        metrics.REVOCATIONS.labels(verdict.action.value).inc()
        logger.info(
            "client %s (user %s): %s: %s (found by %s)",
            entry.connection.client_id,
            entry.grant.user,
            verdict.action.value,
            verdict.why,
            source,
        )
        if verdict.action is not Action.NARROW:
            self.remove(entry.connection.client_id)
        else:
            remaining = (entry.grant.jobs or frozenset()) - verdict.jobs
            self.subscribed(entry.connection.client_id, remaining)
        try:
            await entry.connection.revoked(verdict)
        except Exception as exc:  # one connection must not stop the others
            logger.warning(
                "client %s: could not act on its revoked authority (%s: %s)",
                entry.connection.client_id,
                type(exc).__name__,
                exc,
            )

    async def handle(self, event: AuthorityEvent) -> None:
        """Act on one change of authority, for this process's connections."""
        source = f"an announced {event.op.value}"
        if event.op is Op.REAUTHORIZE:
            await self.recheck(self._named(event), source)
            return
        clients = self._named(event)
        for client in clients:
            entry = self.entries.get(client)
            if entry is None:
                continue
            if event.op is Op.DISCONNECT:
                self.remove(client)
                await entry.connection.disconnected_by_staff(event.by)
            else:
                why = "logged out" if event.session else "the user's access was revoked"
                await self._act(entry, Verdict(Action.CLOSE_IDENTITY, why), source)

    def _named(self, event: AuthorityEvent) -> list[str]:
        if event.session is not None:
            return sorted(self._by_session.get(event.session, ()))
        clients = sorted(self._by_user.get(event.user, ())) if event.user else list(self.entries)
        if event.job is None:
            return clients
        return [
            client
            for client in clients
            if (grant := self.entries[client].grant).jobs is None or event.job in grant.jobs
        ]

    async def _listen(self) -> None:
        """Receive the authority events sent to every process, and act on them."""
        layer: Any = get_channel_layer()
        while True:
            try:
                channel = await layer.new_channel()
                await layer.group_add(AUTHORITY_GROUP, channel)
                self.listening.set()
                while True:
                    message = await layer.receive(channel)
                    try:
                        event = AuthorityEvent.from_event(message)
                    except MalformedAuthorityEvent as exc:
                        logger.warning("dropped an authority event: %s", loggable(str(exc)))
                        continue
                    await self.handle(event)
            except Exception as exc:  # a lost layer: join again (the sweep covers the gap)
                self.listening.clear()
                logger.warning(
                    "authority events: %s: %s; joining again in %.1fs",
                    type(exc).__name__,
                    exc,
                    RETRY_SECONDS,
                )
                await asyncio.sleep(RETRY_SECONDS)


def _discard(index: dict[str, set[str]], key: str, client: str) -> None:
    clients = index.get(key)
    if clients is not None:
        clients.discard(client)
        if not clients:
            del index[key]


authorities = PerLoop(Authorities)
"""The running event loop's :class:`Authorities` (one per server process)."""
