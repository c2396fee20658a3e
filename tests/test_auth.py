"""The origin rule and token discovery (the middleware is tested end to end)."""

from __future__ import annotations

import pytest

from jobupdates.auth import offered_token, origin_allowed

HOSTS = ["127.0.0.1", "localhost", ".example.com"]


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8000", True),
        ("https://localhost", True),
        ("https://app.example.com", True),
        ("https://example.com", True),
        ("https://evil.test", False),
        ("https://example.com.evil.test", False),
        ("null", False),
        ("file://", False),
        ("", False),
        (None, False),
    ],
)
def test_origins_follow_allowed_hosts(origin, allowed):
    assert origin_allowed(origin, allowed_origins=(), allowed_hosts=HOSTS) is allowed


def test_explicit_origin_list_replaces_allowed_hosts():
    origins = ("https://console.example.com",)
    assert origin_allowed(
        "https://console.example.com", allowed_origins=origins, allowed_hosts=HOSTS
    )
    assert not origin_allowed(
        "https://app.example.com", allowed_origins=origins, allowed_hosts=HOSTS
    )


def test_star_turns_the_check_off_but_never_lets_a_missing_origin_through():
    assert origin_allowed("https://anything.test", allowed_origins=("*",), allowed_hosts=[])
    assert not origin_allowed(None, allowed_origins=("*",), allowed_hosts=[])


def test_token_is_found_among_subprotocols():
    assert offered_token(["jobupdates.v1", "token.abc.def"]) == "abc.def"
    assert offered_token(["jobupdates.v1"]) is None
    assert offered_token([]) is None


def test_empty_allowed_hosts_follow_django_in_debug(settings):
    from jobupdates.auth import _allowed_hosts

    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    assert origin_allowed(
        "http://localhost:8000", allowed_origins=(), allowed_hosts=_allowed_hosts()
    )
    settings.DEBUG = False
    assert _allowed_hosts() == []
