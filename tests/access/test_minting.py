"""Minting WebSocket tokens: ``POST /ws/token`` and ``manage.py mint_ws_token``."""

from __future__ import annotations

import io
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from jobupdates.access.minting import mint
from jobupdates.access.tokens import TokenError, read_token, sign_token

CSRF = "a" * 32
"""A CSRF secret, sent as both the cookie and the header (Django's double submit)."""


@pytest.fixture
def strict_client(db) -> Client:
    """A test client that enforces CSRF checks, as a browser's requests are checked."""
    return Client(enforce_csrf_checks=True)


def test_anonymous_gets_a_json_401(strict_client):
    response = strict_client.post("/ws/token")
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"


def test_a_session_without_the_csrf_token_gets_a_json_403(strict_client):
    strict_client.force_login(User.objects.create_user("plain", password="x"))
    response = strict_client.post("/ws/token")
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"
    strict_client.cookies["csrftoken"] = CSRF
    assert strict_client.post("/ws/token", HTTP_X_CSRFTOKEN="b" * 32).status_code == 403


def test_a_session_with_the_csrf_token_gets_a_token_for_its_user(strict_client, settings):
    settings.JOBUPDATES_TOKEN_TTL = 30
    user = User.objects.create_user("plain", password="x")
    strict_client.force_login(user)
    strict_client.cookies["csrftoken"] = CSRF
    response = strict_client.post("/ws/token", HTTP_X_CSRFTOKEN=CSRF)
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    body = response.json()
    assert body["expires_in"] == 30
    assert body["subprotocols"] == ["jobupdates.v1", f"token.{body['token']}"]
    assert read_token(body["token"], max_age=30).user_pk == str(user.pk)


def test_get_is_not_allowed(strict_client):
    strict_client.force_login(User.objects.create_user("plain", password="x"))
    assert strict_client.get("/ws/token").status_code == 405


def test_a_shorter_ttl_is_a_backdated_token(monkeypatch):
    minted = mint(7, ttl=10, max_ttl=60)
    assert minted.expires_in == 10
    assert read_token(minted.token, max_age=60).user_pk == "7"
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 11)
    with pytest.raises(TokenError, match="expired"):
        read_token(minted.token, max_age=60)
    with pytest.raises(ValueError, match="between 1 and 60"):
        mint(7, ttl=61, max_ttl=60)
    with pytest.raises(TokenError, match="expired"):
        read_token(sign_token(7, age=120), max_age=60)


def test_command_prints_a_token_for_an_active_user(db):
    user = User.objects.create_user("svc", password="x")
    out = io.StringIO()
    call_command("mint_ws_token", "svc", stdout=out)
    assert read_token(out.getvalue().strip(), max_age=60).user_pk == str(user.pk)


def test_command_ttl(db, settings, monkeypatch):
    settings.JOBUPDATES_TOKEN_TTL = 60
    User.objects.create_user("svc", password="x")
    out = io.StringIO()
    call_command("mint_ws_token", "svc", "--ttl", "5", stdout=out)
    token = out.getvalue().strip()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 6)
    with pytest.raises(TokenError, match="expired"):
        read_token(token, max_age=60)
    with pytest.raises(CommandError, match="between 1 and 60"):
        call_command("mint_ws_token", "svc", "--ttl", "600")


def test_command_refuses_unknown_and_inactive_users(db):
    User.objects.create_user("gone", password="x", is_active=False)
    with pytest.raises(CommandError, match="unknown user 'nobody'"):
        call_command("mint_ws_token", "nobody")
    with pytest.raises(CommandError, match="inactive user 'gone'"):
        call_command("mint_ws_token", "gone")
