"""Short-lived, single-use tokens for clients that have no Django session.

A token is signed with the project's ``SECRET_KEY`` (Django's
:class:`~django.core.signing.TimestampSigner`, ``.``-separated, so every
character is valid in a ``Sec-WebSocket-Protocol`` header) and names a user
and a random nonce. A client offers it as a WebSocket subprotocol::

    Sec-WebSocket-Protocol: jobupdates.v1, token.<token>

so it stays out of URLs and access logs. It expires after
``JOBUPDATES_TOKEN_TTL`` seconds, and :mod:`jobupdates.access.middleware` accepts
each nonce once: the first use marks the nonce used in Redis for
:func:`used_mark_milliseconds`, longer than the token can still be valid.

:func:`sign_token` is the only function that signs a token;
:func:`jobupdates.access.minting.mint` (the ``POST /ws/token`` view and
``manage.py mint_ws_token``) calls it.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass

from django.core import signing
from django.utils.encoding import force_str

from jobupdates.protocol.encodings import JSON_SUBPROTOCOL

__all__ = [
    "SUBPROTOCOL",
    "TOKEN_PREFIX",
    "USED_MARK_MARGIN_MS",
    "TokenClaims",
    "TokenError",
    "read_token",
    "sign_token",
    "used_mark_milliseconds",
]

SUBPROTOCOL = JSON_SUBPROTOCOL
"""The subprotocol of JSON frames, offered before a token (see
:mod:`jobupdates.protocol.encodings`; ``jobupdates.v1.msgpack`` for MessagePack)."""
TOKEN_PREFIX = "token."  # noqa: S105 - a prefix, not a secret
"""A subprotocol starting with this carries a token."""
_SALT = "jobupdates.ws-token"
USED_MARK_MARGIN_MS = 1000
"""Extra life of a used mark, for clocks of server processes that differ a little."""


class TokenError(ValueError):
    """A token that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid token says: whose it is, and its single-use nonce."""

    user_pk: str
    nonce: str


class _Signer(signing.TimestampSigner):
    """Django's :class:`~django.core.signing.TimestampSigner` with this app's salt, whose
    timestamps lie ``age`` seconds back."""

    def __init__(self, age: float = 0.0) -> None:
        super().__init__(salt=_SALT, sep=".")
        self.age = age

    def timestamp(self) -> str:
        return force_str(signing.b62_encode(int(time.time() - self.age)))


def sign_token(user_pk: object, *, age: float = 0.0) -> str:
    """Return a new token for the user with primary key ``user_pk``, with a fresh nonce.

    Args:
        user_pk: The user's primary key.
        age: Seconds the token looks old: it expires that much sooner.
    """
    return _Signer(age).sign_object({"u": str(user_pk), "n": secrets.token_hex(12)})


def read_token(token: str, max_age: float) -> TokenClaims:
    """Verify ``token`` and return its claims.

    Raises:
        TokenError: If it is expired, forged or malformed.
    """
    try:
        claims = _Signer().unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise TokenError(
            f"expected a token younger than {max_age:g}s, got an expired one"
        ) from None
    except (signing.BadSignature, ValueError):
        raise TokenError("expected a token signed by this server, got an invalid one") from None
    if not (isinstance(claims, dict) and isinstance(claims.get("u"), str) and claims.get("n")):
        raise TokenError("expected a token naming a user, got one without") from None
    return TokenClaims(user_pk=claims["u"], nonce=str(claims["n"]))


def used_mark_milliseconds(ttl: float) -> int:
    """Milliseconds to keep a nonce marked used, for tokens valid ``ttl`` seconds.

    A token is valid at most ``ttl`` seconds after it was minted (its
    timestamp is rounded down to the second), and it is first used after it
    was minted; so a mark kept ``ttl`` seconds, rounded up to the
    millisecond, outlives the token. ``USED_MARK_MARGIN_MS`` more covers
    clocks that differ between the process that minted it and the one that
    read it. Rounding ``ttl`` down instead (5.9 to 5 s) would let a replay
    through during the last 0.9 s.
    """
    return math.ceil(ttl * 1000) + USED_MARK_MARGIN_MS
