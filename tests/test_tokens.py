"""Signed WebSocket tokens: round trip, expiry, forgery."""

from __future__ import annotations

import re
import time

import pytest

from jobupdates.tokens import TokenError, mint_token, read_token


def test_token_round_trips_and_is_a_valid_subprotocol_token():
    token = mint_token(42)
    claims = read_token(token, max_age=60)
    assert claims.user_pk == "42"
    assert len(claims.nonce) == 24
    assert re.fullmatch(r"[A-Za-z0-9._~!#$%&'*+^`|-]+", token), "RFC 7230 token characters only"
    assert read_token(mint_token(42), 60).nonce != claims.nonce


def test_expired_token(monkeypatch):
    token = mint_token(1)
    monkeypatch.setattr(time, "time", lambda: 10**10)
    with pytest.raises(TokenError, match="expected a token younger than 60s, got an expired one"):
        read_token(token, max_age=60)


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "xx", lambda t: "x" + t, lambda t: "", lambda t: "a.b"]
)
def test_forged_or_malformed_token(mangle):
    with pytest.raises(TokenError, match="expected a token signed by this server"):
        read_token(mangle(mint_token(1)), max_age=60)


def test_token_signed_with_another_key_is_refused(settings):
    token = mint_token(1)
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(TokenError, match="signed by this server"):
        read_token(token, max_age=60)
