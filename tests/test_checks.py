"""System checks report misconfiguration with jobupdates.E0xx/W0xx ids."""

from __future__ import annotations

from django.core import checks

REDIS_LAYER = {
    "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 30}]},
}


def ids(**kwargs):
    return sorted(m.id for m in checks.run_checks() if m.id and m.id.startswith("jobupdates."))


def test_project_settings_pass(settings):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    assert ids() == []


def test_in_memory_layer_without_debug_is_an_error(settings):
    settings.DEBUG = False
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    assert ids() == ["jobupdates.E001"]
    settings.DEBUG = True
    assert ids() == []


def test_bad_redis_url_is_e002(settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    monkeypatch.setenv("JOBUPDATES_REDIS_URL", "localhost:6379")
    messages = [m for m in checks.run_checks() if m.id == "jobupdates.E002"]
    assert len(messages) == 1
    assert "expected a URL with scheme" in messages[0].msg


def test_malformed_channel_layer_address_is_e002(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            **REDIS_LAYER,
            "CONFIG": {"hosts": [{"address": "127.0.0.1:6379", "socket_timeout": 30}]},
        }
    }
    assert ids() == ["jobupdates.E002"]


def test_invalid_app_settings_are_e003_each(settings):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    settings.JOBUPDATES_GROUP = "has:colons"
    settings.JOBUPDATES_REQUIRE_AUTH = "perhaps"
    messages = [m for m in checks.run_checks() if m.id == "jobupdates.E003"]
    assert sorted(m.msg.split(":")[0] for m in messages) == [
        "JOBUPDATES_GROUP",
        "JOBUPDATES_REQUIRE_AUTH",
    ]


def test_missing_layer_is_e004(settings):
    settings.CHANNEL_LAYERS = {}
    assert ids() == ["jobupdates.E004"]


def test_missing_socket_timeout_is_w001(settings):
    settings.CHANNEL_LAYERS = {
        "default": {**REDIS_LAYER, "CONFIG": {"hosts": ["redis://127.0.0.1:6379"]}}
    }
    assert ids() == ["jobupdates.W001"]


def test_a_wildcard_allowed_host_without_origins_is_w002(settings):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    settings.ALLOWED_HOSTS = ["*"]
    messages = [m for m in checks.run_checks() if m.id == "jobupdates.W002"]
    assert len(messages) == 1
    assert "refused" in messages[0].msg
    assert "JOBUPDATES_ALLOWED_ORIGINS" in messages[0].hint
    settings.JOBUPDATES_ALLOWED_ORIGINS = "https://app.example.com"
    assert ids() == [], "expected explicit origins to settle it"
    settings.JOBUPDATES_ALLOWED_ORIGINS = ""
    settings.ALLOWED_HOSTS = ["app.example.com"]
    assert ids() == []
