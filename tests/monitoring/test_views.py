"""/ws/stats, /metrics and the admin's "Connected clients": who may see them, and what."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import checks

TOKEN = "t" * 40
CHANGELIST = "/admin/jobupdates/connectedclient/"


@pytest.fixture
def registry_redis(redis_server, settings):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    return redis_server


@pytest.fixture
def plain_client(client, db):
    client.force_login(User.objects.create_user("plain", password="x"))
    return client


@pytest.fixture
def staff_client(client, db):
    client.force_login(User.objects.create_user("staff", password="x", is_staff=True))
    return client


@pytest.mark.parametrize("path", ["/ws/stats", "/metrics", CHANGELIST])
def test_anonymous_is_refused(client, db, path):
    response = client.get(path)
    assert response.status_code in (302, 403)
    if path == CHANGELIST:
        assert "/admin/login/" in response["Location"]
    else:
        assert response.status_code == 403


@pytest.mark.parametrize("path", ["/ws/stats", "/metrics"])
def test_non_staff_users_and_wrong_tokens_get_403(plain_client, settings, path):
    settings.JOBUPDATES_MONITORING_TOKEN = TOKEN
    settings.JOBUPDATES_METRICS_TOKEN = TOKEN
    assert plain_client.get(path).status_code == 403
    assert plain_client.get(path, HTTP_AUTHORIZATION="Bearer " + "x" * 40).status_code == 403
    assert plain_client.get(path, HTTP_AUTHORIZATION=TOKEN).status_code == 403


def test_non_staff_user_cannot_open_the_admin_list(plain_client):
    response = plain_client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_token_access_is_off_when_unset(client, db):
    assert client.get("/ws/stats", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_monitoring_token_reads_stats(client, db, settings, registry_redis):
    settings.JOBUPDATES_MONITORING_TOKEN = TOKEN
    response = client.get("/ws/stats", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    document = response.json()
    assert document["connected_clients"] == 0
    assert document["instances"] == {}
    assert document["bridge"]["connected"] is False


def test_staff_reads_stats_and_metrics(staff_client, registry_redis):
    assert staff_client.get("/ws/stats").json()["connected_clients"] == 0
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    for name in (
        "jobupdates_connects_total",
        "jobupdates_deliveries_total",
        "jobupdates_delivery_latency_seconds_bucket",
    ):
        assert name in text


def test_metrics_token(client, db, settings, registry_redis):
    settings.JOBUPDATES_METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


def test_stats_say_503_when_redis_is_down(staff_client):
    assert staff_client.get("/ws/stats").status_code == 503  # tests point Redis at port 9


def test_staff_sees_the_list_read_only(staff_client, registry_redis):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    from django.contrib import admin

    from jobupdates.models import ConnectedClient

    model_admin = admin.site._registry[ConnectedClient]
    assert list(model_admin.get_actions(response.wsgi_request)) == [
        "disconnect_selected",
        "disconnect_users",
    ]
    assert staff_client.get("/admin/").content.decode().count("Connected clients") >= 1
    assert staff_client.get(CHANGELIST + "add/").status_code == 403


def test_short_tokens_and_bad_multiproc_dir_are_errors(settings, monkeypatch, tmp_path):
    settings.JOBUPDATES_MONITORING_TOKEN = "short"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    found = {m.id for m in checks.run_checks()}
    assert {"jobupdates.E010", "jobupdates.E011"} <= found


def test_socket_timeout_must_be_below_two_intervals(settings):
    settings.JOBUPDATES_REGISTRY_INTERVAL = 1
    settings.JOBUPDATES_REGISTRY_SOCKET_TIMEOUT = 5
    assert "jobupdates.E012" in {m.id for m in checks.run_checks()}


@pytest.mark.parametrize(
    ("path", "source"),
    [(CHANGELIST, "client registry"), ("/admin/jobupdates/deadletter/", "dead letters")],
)
def test_admin_lists_say_when_redis_cannot_be_read(staff_client, path, source):
    response = staff_client.get(path)  # tests point Redis at port 9
    assert response.status_code == 200
    warning = f"The {source} could not be read (ConnectionError); this list may be out of date."
    assert warning in response.content.decode()
