"""Minting WebSocket tokens for the endpoint and the management command.

A token (:mod:`jobupdates.access.tokens`) is valid for ``JOBUPDATES_TOKEN_TTL``
seconds after its timestamp. A shorter lifetime is given by backdating the
timestamp: a token minted with ``ttl=10`` under a TTL of 60 carries a
timestamp 50 s in the past, so the server's own expiry check ends it 10 s
from now (to the second, rounded down). Nothing else is needed to verify it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from django.core import signing
from django.utils.encoding import force_str

from jobupdates.access.tokens import _SALT, SUBPROTOCOL, TOKEN_PREFIX

__all__ = ["MintedToken", "backdated_token", "mint"]


class _BackdatedSigner(signing.TimestampSigner):
    """A :class:`~django.core.signing.TimestampSigner` whose timestamps lie ``age`` s back."""

    def __init__(self, age: float) -> None:
        super().__init__(salt=_SALT, sep=".")
        self.age = age

    def timestamp(self) -> str:
        return force_str(signing.b62_encode(int(time.time() - self.age)))


def backdated_token(user_pk: object, age: float) -> str:
    """Return a token for ``user_pk`` that looks ``age`` seconds old.

    Same claims as :func:`jobupdates.access.tokens.mint_token`: the user and a
    single-use nonce.
    """
    return _BackdatedSigner(age).sign_object({"u": str(user_pk), "n": secrets.token_hex(12)})


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
    return MintedToken(backdated_token(user_pk, max_ttl - ttl), ttl)
