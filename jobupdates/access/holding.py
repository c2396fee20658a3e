"""What a connection holds of its user's authority, and what it does when that ends.

:class:`HoldsAuthority` is the consumer's part of revocation: at connect it
hands its :class:`~jobupdates.protocol.authority.Grant` to the process's
:func:`~jobupdates.access.revocation.authorities`, and when a re-validation
judges it again it closes (4401 when the identity is gone, 4403 when the
permission is) or narrows to the jobs it may still see (``unsubscribed``,
``permission_revoked``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from jobupdates import protocol
from jobupdates.access.middleware import SESSION_KEY
from jobupdates.access.revocation import authorities
from jobupdates.delivery.feed import Feed
from jobupdates.protocol import CloseCode, ErrorCode, ServerMessageType
from jobupdates.protocol.authority import Action, Grant, Verdict
from jobupdates.protocol.logs import loggable

__all__ = ["HoldsAuthority"]

logger = logging.getLogger("jobupdates.consumers")


class HoldsAuthority:
    """A consumer whose connection ends, or narrows, with its user's authority."""

    client_id: str
    scope: dict[str, Any]
    user_key: str | None
    feed: Feed | None

    if TYPE_CHECKING:  # the consumer's own, not defined here: they would shadow its bases'

        async def send(
            self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
        ) -> None: ...

        async def close_with(
            self, code: ErrorCode, message: str, close_code: CloseCode
        ) -> None: ...

        def update_presence(self) -> None: ...

    def hold_authority(self) -> None:
        """Keep what this connection was admitted with, to judge it again when the
        user's authority changes (:mod:`jobupdates.access.revocation`)."""
        user = self.scope.get("user")
        if self.user_key is None or user is None or self.feed is None:
            return  # anonymous (allowed explicitly): nothing to revoke
        jobs = self.feed.jobs
        grant = Grant(
            self.user_key,
            self.scope.get(SESSION_KEY),
            str(user.get_session_auth_hash()),
            None if jobs is None else frozenset(jobs),
        )
        authorities().add(self, grant)

    async def revoked(self, verdict: Verdict) -> None:
        """The user's authority ended (close 4401 or 4403) or shrank (``unsubscribed``)."""
        if verdict.action is Action.NARROW and self.feed is not None:
            lost = tuple(sorted(verdict.jobs))
            self.feed.jobs = (self.feed.jobs or set()) - verdict.jobs
            frame = protocol.subscriptions_frame(
                ServerMessageType.UNSUBSCRIBED, lost, ErrorCode.PERMISSION_REVOKED
            )
            await self.send(text_data=frame)
            self.update_presence()
        elif verdict.action is Action.CLOSE_IDENTITY:
            message = f"{verdict.why}; log in again to receive job updates"
            await self.close_with(
                ErrorCode.AUTHENTICATION_REVOKED, message, CloseCode.UNAUTHENTICATED
            )
        elif verdict.action is Action.CLOSE_PERMISSION:
            message = f"{verdict.why}; ask for access, then reconnect"
            await self.close_with(ErrorCode.PERMISSION_REVOKED, message, CloseCode.FORBIDDEN)

    async def disconnected_by_staff(self, by: str) -> None:
        """Close as a staff member asked (this client, or every one of its user's)."""
        logger.info("client %s disconnected by staff (%s)", self.client_id, loggable(by))
        message = "a staff member disconnected this client; reload the page to reconnect"
        await self.close_with(
            ErrorCode.DISCONNECTED_BY_STAFF, message, CloseCode.DISCONNECTED_BY_STAFF
        )
