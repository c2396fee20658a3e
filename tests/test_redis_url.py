"""Redis URLs of both forms, parsed once for every client (pure)."""

from __future__ import annotations

import pytest

from jobupdates.redis_url import (
    RedisUrlError,
    SentinelTarget,
    is_sentinel,
    layer_host,
    parse_sentinel,
    redact_url,
    redis_url_problem,
)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database():
    target = parse_sentinel("redis+sentinel://s1:26380,s2,[::1]:26381/botrix/2")
    assert target == SentinelTarget(
        sentinels=(("s1", 26380), ("s2", 26379), ("::1", 26381)), service="botrix", db=2
    )
    assert target.primary_options() == {"db": 2}
    assert target.sentinel_options() == {}


def test_the_primary_and_the_sentinels_have_their_own_credentials_and_tls():
    target = parse_sentinel(
        "rediss+sentinel://app:p%40ss@s1:26379/botrix"
        "?sentinel_username=watch&sentinel_password=s3cret"
    )
    assert target.primary_options() == {"db": 0, "username": "app", "password": "p@ss", "ssl": True}
    assert target.sentinel_options() == {"username": "watch", "password": "s3cret", "ssl": True}
    password_only = parse_sentinel("redis+sentinel://:only@s1/botrix")
    assert (password_only.username, password_only.password) == (None, "only")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://s1:26379", "expected /<service name>[/<db>]"),
        ("redis+sentinel://s1:26379/botrix/0/extra", "expected /<service name>[/<db>]"),
        ("redis+sentinel://s1:26379/botrix/zero", "expected a database number"),
        ("redis+sentinel://s1:port/botrix", "expected a numeric port for sentinel 's1'"),
        ("redis+sentinel://s1:70000/botrix", "expected a numeric port"),
        ("redis+sentinel://s1,,s2/botrix", "expected host:port for each sentinel"),
        ("redis+sentinel://s1/botrix?db=1", "expected only sentinel_password, sentinel_username"),
    ],
)
def test_a_bad_sentinel_url_says_what_was_expected(url, expected):
    with pytest.raises(RedisUrlError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse_sentinel(url)
    assert expected in (redis_url_problem(url) or "")


def test_messages_never_carry_passwords():
    url = "redis+sentinel://app:hunter2@s1:bad/botrix?sentinel_password=s3cret"
    problem = redis_url_problem(url) or ""
    assert "hunter2" not in problem
    assert "s3cret" not in problem
    assert "app:***@s1:bad" in problem
    assert "hunter2" not in (redis_url_problem("http://u:hunter2@host/0") or "")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://u:p@host/1",
        "unix:///tmp/r.sock",
        "redis+sentinel://s1:26379,s2:26379/botrix/0",
        "rediss+sentinel://s1/botrix",
    ],
)
def test_good_urls_of_either_form(url):
    assert redis_url_problem(url) is None


def test_either_form_becomes_a_channel_layer_host():
    assert layer_host("redis://h:1/0", socket_timeout=30) == {
        "address": "redis://h:1/0",
        "socket_timeout": 30,
    }
    url = "redis+sentinel://:pw@s1:26380,s2/botrix/3?sentinel_password=sp"
    assert is_sentinel(url)
    assert layer_host(url, socket_timeout=30, socket_keepalive=True) == {
        "sentinels": [["s1", 26380], ["s2", 26379]],
        "master_name": "botrix",
        "sentinel_kwargs": {"password": "sp", "socket_timeout": 30},
        "db": 3,
        "password": "pw",
        "socket_timeout": 30,
        "socket_keepalive": True,
    }


def test_a_sentinel_url_that_does_not_parse_is_left_for_the_system_check():
    assert layer_host("redis+sentinel://s1:x/botrix", socket_timeout=30) == {
        "address": "redis+sentinel://s1:x/botrix",
        "socket_timeout": 30,
    }


def test_redact_url_hides_only_the_passwords():
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("redis://user:pw@redis:6379/1") == "redis://user:***@redis:6379/1"
    assert redact_url("rediss://:pw@[::1]/0") == "rediss://:***@[::1]/0"
    assert (
        redact_url("redis+sentinel://a:pw@s1,s2/botrix?sentinel_username=w&sentinel_password=x")
        == "redis+sentinel://a:***@s1,s2/botrix?sentinel_username=w&sentinel_password=***"
    )
