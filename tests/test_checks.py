"""System checks report misconfiguration with jobupdates.E0xx/W0xx ids."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest
from channels_redis.pubsub import RedisSingleShardConnection
from daphne.server import Server
from django.core import checks

from jobupdates.delivery import internals
from jobupdates.delivery.layers import JobUpdatesChannelLayer

REDIS_LAYER = {
    "BACKEND": "jobupdates.delivery.layers.JobUpdatesChannelLayer",
    "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:6379/0", "socket_timeout": 30}]},
}


class OwnLayer(JobUpdatesChannelLayer):
    """A project's subclass keeps the fast path."""


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


def test_a_backend_that_does_not_import_is_e004(settings):
    settings.CHANNEL_LAYERS = {"default": {**REDIS_LAYER, "BACKEND": "jobupdates.nowhere.Layer"}}
    [message] = [m for m in checks.run_checks() if m.id == "jobupdates.E004"]
    assert "expected an importable BACKEND, got 'jobupdates.nowhere.Layer'" in message.msg


@pytest.mark.parametrize(
    "backend",
    ["channels_redis.pubsub.RedisPubSubChannelLayer", "channels_redis.core.RedisChannelLayer"],
)
def test_a_layer_without_the_fast_path_is_w003(settings, backend):
    settings.CHANNEL_LAYERS = {"default": {**REDIS_LAYER, "BACKEND": backend}}
    [message] = [m for m in checks.run_checks() if m.id and m.id.startswith("jobupdates.")]
    assert message.id == "jobupdates.W003"
    assert backend in message.msg
    assert "jobupdates.delivery.layers.JobUpdatesChannelLayer" in message.hint


def test_the_fast_layer_under_its_deprecated_path_or_subclassed_has_no_w003(settings, monkeypatch):
    monkeypatch.delitem(sys.modules, "jobupdates.layers", raising=False)
    settings.CHANNEL_LAYERS = {
        "default": {**REDIS_LAYER, "BACKEND": "jobupdates.layers.JobUpdatesChannelLayer"}
    }
    with pytest.warns(DeprecationWarning, match="jobupdates.delivery.layers"):
        assert ids() == []
    settings.CHANNEL_LAYERS = {"default": {**REDIS_LAYER, "BACKEND": f"{__name__}.OwnLayer"}}
    assert ids() == []


@pytest.mark.parametrize(
    "layers", [{}, {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}]
)
def test_layer_hints_name_the_fast_layer(settings, layers):
    settings.DEBUG = False
    settings.CHANNEL_LAYERS = layers
    [message] = [m for m in checks.run_checks() if m.id in ("jobupdates.E001", "jobupdates.E004")]
    assert message.hint.endswith(" jobupdates.delivery.layers.JobUpdatesChannelLayer."), (
        message.hint
    )


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


def test_a_bad_sentinel_url_is_e002_with_its_reason_and_a_good_one_passes(settings):
    settings.JOBUPDATES_REDIS_URL = "redis+sentinel://s1:26379"
    messages = [m for m in checks.run_checks() if m.id == "jobupdates.E002"]
    assert len(messages) == 1
    assert "expected /<service name>[/<db>]" in messages[0].msg
    settings.JOBUPDATES_REDIS_URL = "redis+sentinel://s1:26379,s2:26379/botrix/0"
    assert not [m for m in checks.run_checks() if m.id == "jobupdates.E002"]


@pytest.fixture
def internals_probed_afresh():
    """The checks probe afresh; the process's probe is forgotten around the test."""
    internals.probed.cache_clear()
    yield
    internals.probed.cache_clear()


@pytest.mark.usefixtures("internals_probed_afresh")
def test_a_missing_private_name_without_fallback_is_e030(settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    monkeypatch.delattr(RedisSingleShardConnection, "_ensure_receiver")
    [message] = [m for m in checks.run_checks() if m.id and m.id.startswith("jobupdates.")]
    assert message.id == "jobupdates.E030"
    assert message.level == checks.ERROR
    version = metadata.version("channels-redis")
    assert (
        f"channels-redis {version}: "
        "channels_redis.pubsub.RedisSingleShardConnection._ensure_receiver" in message.msg
    )
    assert "pip install 'channels-redis>=4.3.0,<4.4'" in message.msg
    assert "refuse to start" in message.hint


@pytest.mark.usefixtures("internals_probed_afresh")
def test_a_missing_private_name_with_a_fallback_is_w030_naming_it(settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    monkeypatch.delattr(Server, "kill_all_applications")
    assert ids() == ["jobupdates.W030"]
    [message] = [m for m in checks.run_checks() if m.id == "jobupdates.W030"]
    assert message.msg.startswith("drain unavailable: missing daphne ")
    assert "daphne.server.Server.kill_all_applications" in message.msg
    assert "1006" in message.msg


@pytest.mark.usefixtures("internals_probed_afresh")
def test_an_untested_version_is_w031(settings, monkeypatch):
    settings.CHANNEL_LAYERS = {"default": REDIS_LAYER}
    monkeypatch.setitem(internals.TESTED, "Twisted", internals.Range("Twisted", "1", "2"))
    [message] = [m for m in checks.run_checks() if m.id == "jobupdates.W031"]
    assert message.msg.startswith(f"Twisted {metadata.version('Twisted')} is outside the ")
    assert "(Twisted>=1,<2)" in message.msg
    assert ids() == ["jobupdates.W031"]
