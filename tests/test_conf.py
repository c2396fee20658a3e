"""Settings: Django settings first, then the environment, then documented defaults."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobupdates.conf import SETTING_NAMES, conf, redis_url_problem


def test_defaults(settings):
    settings.REDIS_URL = "redis://10.1.2.3:6380/2"
    assert conf.REDIS_URL == "redis://10.1.2.3:6380/2"
    assert conf.CHANNEL == "botrix:jobs:updates"
    assert conf.GROUP == "jobupdates.all"
    assert conf.STATUSES == ("pending", "queued", "processing", "completed", "failed", "cancelled")
    assert conf.MAX_PAYLOAD_BYTES == 1024 * 1024
    assert conf.REQUIRE_AUTH is True
    assert conf.REDIS_SOCKET_TIMEOUT == 30.0
    assert conf.RECONNECT_INITIAL == 0.5
    assert conf.RECONNECT_MAX == 10.0


def test_every_setting_is_documented():
    from jobupdates.conf import Settings

    for name in SETTING_NAMES:
        assert getattr(Settings, name).__doc__, name
    assert len(SETTING_NAMES) >= 10


def test_environment_is_parsed_by_type(monkeypatch):
    monkeypatch.setenv("JOBUPDATES_REQUIRE_AUTH", "off")
    monkeypatch.setenv("JOBUPDATES_STATUSES", "a, b ,c")
    monkeypatch.setenv("JOBUPDATES_MAX_PAYLOAD_BYTES", "2048")
    monkeypatch.setenv("JOBUPDATES_REDIS_SOCKET_TIMEOUT", "2.5")
    monkeypatch.setenv("JOBUPDATES_CHANNEL", "other:channel")
    assert conf.REQUIRE_AUTH is False
    assert conf.STATUSES == ("a", "b", "c")
    assert conf.MAX_PAYLOAD_BYTES == 2048
    assert conf.REDIS_SOCKET_TIMEOUT == 2.5
    assert conf.CHANNEL == "other:channel"


def test_django_setting_wins_over_environment(settings, monkeypatch):
    monkeypatch.setenv("JOBUPDATES_REQUIRE_AUTH", "false")
    settings.JOBUPDATES_REQUIRE_AUTH = True
    assert conf.REQUIRE_AUTH is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REQUIRE_AUTH", "maybe", "JOBUPDATES_REQUIRE_AUTH: expected a boolean"),
        ("MAX_PAYLOAD_BYTES", "1.5", "JOBUPDATES_MAX_PAYLOAD_BYTES: expected int, got '1.5'"),
        ("MAX_PAYLOAD_BYTES", "0", "expected a value >= 1, got '0'"),
        ("REDIS_SOCKET_TIMEOUT", "soon", "expected float, got 'soon'"),
        ("STATUSES", " , ", "expected at least one entry"),
        ("GROUP", "botrix:jobs:updates", "expected 1-99 characters of [a-zA-Z0-9-_.]"),
        ("GROUP", "g" * 100, "expected 1-99 characters"),
        ("REDIS_URL", "http://x", "expected a URL with scheme redis, rediss, unix"),
        ("REDIS_URL", "redis://:6379", "expected a host"),
        ("REDIS_URL", "redis://h:port/0", "expected a numeric port"),
        ("RECONNECT_MAX", "0.1", "expected a value >= JOBUPDATES_RECONNECT_INITIAL"),
    ],
)
def test_invalid_values_say_what_was_expected(monkeypatch, name, value, message):
    monkeypatch.setenv(f"JOBUPDATES_{name}", value)
    with pytest.raises(ImproperlyConfigured, match=message.replace("[", r"\[").replace(".", r"\.")):
        getattr(conf, name)


def test_wrong_types_in_django_settings(settings):
    settings.JOBUPDATES_MAX_PAYLOAD_BYTES = True
    settings.JOBUPDATES_STATUSES = ["ok", 3]
    with pytest.raises(ImproperlyConfigured, match="expected int, got True"):
        conf.MAX_PAYLOAD_BYTES  # noqa: B018
    with pytest.raises(ImproperlyConfigured, match="expected a list of strings"):
        conf.STATUSES  # noqa: B018


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://u:p@host/1", "unix:///tmp/r.sock"]
)
def test_good_redis_urls(url):
    assert redis_url_problem(url) is None


def test_debug_key_is_random_kept_private_and_reused(tmp_path):
    from botrix_site.settings import DEV_SECRET_KEY_FILE, dev_secret_key

    key = dev_secret_key(tmp_path / "devdata")
    path = tmp_path / "devdata" / DEV_SECRET_KEY_FILE
    assert path.read_text().strip() == key
    assert path.stat().st_mode & 0o777 == 0o600, "expected the owner alone to read it"
    assert len(key) >= 50
    assert "insecure" not in key
    assert dev_secret_key(tmp_path / "devdata") == key, "expected the same key on every start"
    assert dev_secret_key(tmp_path / "other") != key, "expected each checkout its own key"
    assert sorted(p.name for p in path.parent.iterdir()) == [DEV_SECRET_KEY_FILE]


def test_an_empty_debug_key_file_is_refused(tmp_path):
    from botrix_site.settings import DEV_SECRET_KEY_FILE, dev_secret_key

    (tmp_path / DEV_SECRET_KEY_FILE).write_text("\n")
    with pytest.raises(ImproperlyConfigured, match="expected a development secret key"):
        dev_secret_key(tmp_path)
