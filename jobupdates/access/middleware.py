"""Who is connecting, and from where: token authentication and the origin check.

:func:`identify` does it for ``/ws`` in one step, the session's user included
(see :mod:`jobupdates.asgi`); :class:`JobUpdatesAuthMiddleware` does it for a
project's extra routes, inside Channels' ``AuthMiddlewareStack`` (which loads
the session user). Both only record their findings in the scope; the
consumer refuses with an explicit error frame and close code, because a
refusal at the handshake reaches a browser as a bare HTTP 403.

* ``scope["user"]`` becomes the token's user when a valid token is offered
  (see :mod:`jobupdates.access.tokens`); each token is accepted once.
* ``scope["jobupdates.auth_error"]`` says why an offered token was refused.
* ``scope["jobupdates.session_key"]`` is the session cookie the user came from
  (the connection closes when that session ends: :mod:`jobupdates.access.revocation`).
* ``scope["jobupdates.origin_ok"]`` says whether the ``Origin`` is allowed:
  one of ``JOBUPDATES_ALLOWED_ORIGINS`` (``*`` allows any, explicitly), else
  a host in ``ALLOWED_HOSTS``, whose wildcard ``*`` is ignored here: serving
  any ``Host`` does not make every site's pages trusted. A connection
  without ``Origin`` (not a browser) is allowed only with a token: a session
  cookie alone could be a cross-site WebSocket hijack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from jobupdates.access.sessions import session_users
from jobupdates.access.tokens import TOKEN_PREFIX, TokenError, read_token, used_mark_milliseconds
from jobupdates.conf import conf
from jobupdates.redis_client import async_client

__all__ = [
    "AUTH_ERROR",
    "ORIGIN_OK",
    "SESSION_KEY",
    "WILDCARD_HOST",
    "JobUpdatesAuthMiddleware",
    "identify",
    "offered_token",
    "origin_allowed",
    "origin_hosts",
]

AUTH_ERROR = "jobupdates.auth_error"
ORIGIN_OK = "jobupdates.origin_ok"
SESSION_KEY = "jobupdates.session_key"
"""The session key the user was found through (absent for a token or no cookie)."""
VIA_TOKEN = "jobupdates.via_token"  # noqa: S105 - a scope key, not a secret
WILDCARD_HOST = "*"
"""The ``ALLOWED_HOSTS`` entry matching any host: never taken as an allowed origin."""
DEBUG_HOSTS = (".localhost", "127.0.0.1", "[::1]")
"""What Django allows when ``ALLOWED_HOSTS`` is empty and ``DEBUG`` is on (``make run``)."""


def offered_token(subprotocols: Iterable[str]) -> str | None:
    """Return the token among the offered subprotocols, if any."""
    for offered in subprotocols:
        if offered.startswith(TOKEN_PREFIX):
            return offered[len(TOKEN_PREFIX) :]
    return None


def origin_allowed(
    origin: str | None, *, allowed_origins: Sequence[str], allowed_hosts: Sequence[str]
) -> bool:
    """Whether a browser page at ``origin`` may connect.

    ``*`` in ``allowed_origins`` allows any origin; ``*`` in ``allowed_hosts``
    matches none (see :func:`origin_hosts`).
    """
    if origin is None:
        return False
    if "*" in allowed_origins or origin in allowed_origins:
        return True
    if allowed_origins:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    hosts = [host for host in allowed_hosts if host != WILDCARD_HOST]
    return bool(domain) and validate_host(domain, hosts)


def origin_hosts(allowed_hosts: Sequence[str], *, debug: bool) -> list[str]:
    """The hosts whose pages may connect when ``JOBUPDATES_ALLOWED_ORIGINS`` is empty.

    ``allowed_hosts`` without its wildcard ``*`` (which would let every site's
    pages ride on a user's cookie); if nothing is left and ``debug`` is on,
    the local hosts Django serves in ``DEBUG`` with an empty ``ALLOWED_HOSTS``.
    """
    hosts = [host for host in allowed_hosts if host != WILDCARD_HOST]
    if not hosts and debug:
        return list(DEBUG_HOSTS)
    return hosts


def _allowed_hosts() -> list[str]:
    return origin_hosts(settings.ALLOWED_HOSTS, debug=settings.DEBUG)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _active_user(pk: str) -> AbstractBaseUser | None:
    user: AbstractBaseUser | None = (
        get_user_model()._default_manager.filter(pk=pk, is_active=True).first()
    )
    return user


async def identify(scope: dict[str, Any]) -> None:
    """Record in ``scope`` (changed in place) who connects, and whether from an allowed page.

    A valid token's user, else the session cookie's user (one thread hop, shared
    with the handshakes of the moment: :mod:`jobupdates.access.sessions`; none
    without a cookie), in ``scope["user"]``; why a token was refused in
    ``scope[AUTH_ERROR]``; the origin verdict in ``scope[ORIGIN_OK]``.
    """
    token = offered_token(scope.get("subprotocols", []))
    if token is not None:
        scope["user"] = AnonymousUser()
        await _authenticate(scope, token)
    else:
        cookies = parse_cookie(_header(scope, b"cookie") or "")
        key = cookies.get(settings.SESSION_COOKIE_NAME)
        scope["user"] = await session_users()(key) if key else AnonymousUser()
        if key:
            scope[SESSION_KEY] = key
    _check_origin(scope)


def _check_origin(scope: dict[str, Any]) -> None:
    origin = _header(scope, b"origin")
    allowed = origin_allowed(
        origin, allowed_origins=conf.ALLOWED_ORIGINS, allowed_hosts=_allowed_hosts()
    )
    scope[ORIGIN_OK] = allowed or (origin is None and scope.get(VIA_TOKEN, False))


async def _authenticate(scope: dict[str, Any], token: str) -> None:
    try:
        claims = read_token(token, max_age=conf.TOKEN_TTL)
    except TokenError as exc:
        scope[AUTH_ERROR] = str(exc)
        return
    first_use = await async_client().set(
        conf.TOKEN_USED_PREFIX + claims.nonce,
        b"1",
        nx=True,
        px=used_mark_milliseconds(conf.TOKEN_TTL),
    )
    if not first_use:
        scope[AUTH_ERROR] = "expected a fresh token, got one that was already used"
        return
    user: AbstractBaseUser | None = await database_sync_to_async(_active_user)(claims.user_pk)
    if user is None:
        scope[AUTH_ERROR] = "expected a token of an active user, got one of an unknown user"
        return
    scope["user"] = user
    scope[VIA_TOKEN] = True


class JobUpdatesAuthMiddleware:
    """Token authentication and the origin check for WebSocket connections."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            scope = dict(scope)
            token = offered_token(scope.get("subprotocols", []))
            if token is not None:
                await _authenticate(scope, token)
            _check_origin(scope)
        return await self.inner(scope, receive, send)
