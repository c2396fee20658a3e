"""Minting WebSocket tokens for the endpoint and the management command.

A token (signed by :func:`jobupdates.access.tokens.sign_token`) is valid for
``JOBUPDATES_TOKEN_TTL`` seconds after its timestamp. A shorter lifetime is
given by backdating the timestamp: a token minted with ``ttl=10`` under a TTL
of 60 carries a timestamp 50 s in the past, so the server's own expiry check
ends it 10 s from now (to the second, rounded down). Nothing else is needed to
verify it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobupdates.access.tokens import SUBPROTOCOL, TOKEN_PREFIX, sign_token

__all__ = ["MintedToken", "mint"]


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A new token, and how a client uses it.

    Attributes:
        token: The signed token.
        expires_in: Seconds it stays valid (each token is accepted once).
    """

    token: str
    expires_in: float

    @property
    def subprotocols(self) -> list[str]:
        """What the client offers in ``Sec-WebSocket-Protocol``, in this order."""
        return [SUBPROTOCOL, TOKEN_PREFIX + self.token]

    def as_json(self) -> dict[str, object]:
        """Return the endpoint's JSON body."""
        return {
            "token": self.token,
            "expires_in": self.expires_in,
            "subprotocols": self.subprotocols,
        }


def mint(user_pk: object, *, ttl: float, max_ttl: float) -> MintedToken:
    """Mint a token for ``user_pk`` valid for ``ttl`` seconds.

    Args:
        user_pk: The user's primary key.
        ttl: The lifetime wanted, in seconds.
        max_ttl: ``JOBUPDATES_TOKEN_TTL``, the longest lifetime the server accepts.

    Raises:
        ValueError: If ``ttl`` is not between 1 and ``max_ttl``.
    """
    if not 1 <= ttl <= max_ttl:
        raise ValueError(f"expected a TTL between 1 and {max_ttl:g} seconds, got {ttl:g}")
    return MintedToken(sign_token(user_pk, age=max_ttl - ttl), ttl)
