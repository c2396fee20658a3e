"""Signed WebSocket tokens: round trip, expiry, forgery."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from jobupdates.access.tokens import (
    USED_MARK_MARGIN_MS,
    TokenError,
    read_token,
    sign_token,
    used_mark_milliseconds,
)


def test_token_round_trips_and_is_a_valid_subprotocol_token():
    token = sign_token(42)
    claims = read_token(token, max_age=60)
    assert claims.user_pk == "42"
    assert len(claims.nonce) == 24
    assert re.fullmatch(r"[A-Za-z0-9._~!#$%&'*+^`|-]+", token), "RFC 7230 token characters only"
    assert read_token(sign_token(42), 60).nonce != claims.nonce


def test_expired_token(monkeypatch):
    token = sign_token(1)
    monkeypatch.setattr(time, "time", lambda: 10**10)
    with pytest.raises(TokenError, match="expected a token younger than 60s, got an expired one"):
        read_token(token, max_age=60)


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + "xx", lambda t: "x" + t, lambda t: "", lambda t: "a.b"]
)
def test_forged_or_malformed_token(mangle):
    with pytest.raises(TokenError, match="expected a token signed by this server"):
        read_token(mangle(sign_token(1)), max_age=60)


def test_token_signed_with_another_key_is_refused(settings):
    token = sign_token(1)
    settings.SECRET_KEY = "another-secret-key"
    with pytest.raises(TokenError, match="signed by this server"):
        read_token(token, max_age=60)


@pytest.mark.parametrize("ttl", [1, 1.5, 5.9, 5.001, 60, 59.999])
def test_the_used_mark_outlives_a_fractional_ttl(ttl):
    """``ex=int(5.9)`` let a token through twice in its last 0.9 s."""
    assert used_mark_milliseconds(ttl) >= ttl * 1000 + USED_MARK_MARGIN_MS


def test_the_used_mark_is_in_milliseconds_rounded_up():
    assert used_mark_milliseconds(5.9) == 6900
    assert used_mark_milliseconds(0.0005 + 1) == 1001 + USED_MARK_MARGIN_MS


def test_only_sign_token_signs_a_token():
    import jobupdates.access.tokens as tokens

    package = Path(tokens.__file__).parents[1]
    signing = re.compile(r"\bsign_object\(|\bTimestampSigner\b|\bsigning\.dumps\(")
    signers = [
        str(p.relative_to(package)) for p in package.rglob("*.py") if signing.search(p.read_text())
    ]
    assert signers == ["access/tokens.py"], "expected one signer: tokens.sign_token"
