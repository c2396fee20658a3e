"""The console's views in-process (Django's test client): access and the simulate endpoint.

No browser needed: these run even where Chromium is missing. The simulate
endpoint publishes on a throwaway redis-server, subscribed to here as the
bridge would be.
"""

from __future__ import annotations

import json

import pytest
import redis
from django.contrib.auth.models import User
from django.test import Client

from botrix_site.redis_server import RedisServer
from tests.conftest import CHANNEL

pytestmark = pytest.mark.django_db

LOGIN_REDIRECT = "/admin/login/?next=/console/"


@pytest.fixture
def staff_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("s", password="pw-123456!", is_staff=True))
    return client


def csrf_token(client: Client) -> str:
    response = client.get("/console/")
    assert response.status_code == 200
    return str(response.cookies["csrftoken"].value)


def test_anonymous_and_non_staff_users_are_sent_to_the_admin_login(client: Client):
    response = client.get("/console/")
    assert (response.status_code, response["Location"]) == (302, LOGIN_REDIRECT)
    client.force_login(User.objects.create_user("plain", password="pw-123456!"))
    response = client.get("/console/")
    assert (response.status_code, response["Location"]) == (302, LOGIN_REDIRECT)


def test_console_page_lists_statuses_and_links(staff_client: Client, settings):
    settings.JOBUPDATES_STATUSES = ["queued", "done"]
    response = staff_client.get("/console/")
    page = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    assert '<option value="queued">queued</option><option value="done">done</option>' in page
    assert 'href="/admin/jobupdates/connectedclient/"' in page
    assert 'href="/ws/stats"' in page
    assert "/static/jobupdates/jobupdates.js" in page
    assert "http://" not in page, "expected no off-site assets"
    assert "https://" not in page, "expected no off-site assets"


def test_simulate_refuses_anonymous_non_staff_and_missing_csrf(staff_client: Client):
    fields = {"job_id": "j-1", "status": "completed"}
    assert Client().post("/console/simulate", fields).status_code == 403
    plain = Client()
    plain.force_login(User.objects.create_user("plain", password="pw-123456!"))
    response = plain.post("/console/simulate", fields)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert staff_client.post("/console/simulate", fields).status_code == 403, "expected CSRF"
    assert staff_client.get("/console/simulate").status_code == 405


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"job_id": "j-1", "status": "done"}, "unknown status 'done'"),
        ({"job_id": "", "status": "completed"}, "missing_job_id"),
        ({"job_id": "x" * 256, "status": "completed"}, "invalid_job_id"),
        ({"job_id": "j-1", "status": "completed", "data": "{nope"}, "data is not valid JSON"),
        ({"job_id": "j-1", "status": "completed", "data": "NaN"}, "not standard JSON"),
    ],
)
def test_simulate_explains_what_the_bridge_would_reject(
    staff_client: Client, fields: dict[str, str], reason: str
):
    token = csrf_token(staff_client)
    response = staff_client.post("/console/simulate", fields, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert reason in response.json()["message"]


def test_simulate_publishes_exactly_as_a_worker_does(
    staff_client: Client, settings, redis_server: RedisServer
):
    settings.JOBUPDATES_REDIS_URL = redis_server.url
    subscriber = redis.Redis.from_url(redis_server.url).pubsub()
    subscriber.subscribe(CHANNEL)
    assert subscriber.get_message(timeout=5)["type"] == "subscribe"
    token = csrf_token(staff_client)
    fields = {"job_id": "j-1", "status": "completed", "data": ' {"k": [1, 2]} '}
    response = staff_client.post("/console/simulate", fields, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    expected = '{"job_id":"j-1","status":"completed","data":{"k":[1,2]}}'
    assert response.json() == {"ok": True, "payload": expected, "receivers": 1}
    message = subscriber.get_message(timeout=5)
    assert message["data"] == expected.encode()
    assert json.loads(message["data"])["data"] == {"k": [1, 2]}
    subscriber.close()


def test_simulate_without_redis_is_a_503(staff_client: Client, settings):
    settings.JOBUPDATES_REDIS_URL = "redis://127.0.0.1:9/0"  # the discard port: nothing there
    token = csrf_token(staff_client)
    response = staff_client.post(
        "/console/simulate", {"job_id": "j-1", "status": "queued"}, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 503
    assert response.json()["error"] == "redis_unavailable"


# -- the way to the console, and the icon ----------------------------------------------------

CONSOLE_LINK = 'href="/console/"'
ICON = '<link rel="icon" href="/static/jobupdates/favicon.svg" type="image/svg+xml">'


def test_the_home_page_links_staff_to_the_console_and_no_one_else(
    client: Client, staff_client: Client
):
    assert CONSOLE_LINK not in client.get("/").content.decode()
    plain = Client()
    plain.force_login(User.objects.create_user("plain", password="pw-123456!"))
    assert CONSOLE_LINK not in plain.get("/").content.decode()
    assert CONSOLE_LINK in staff_client.get("/").content.decode()


def test_the_admins_job_updates_section_links_to_the_console(staff_client: Client):
    page = staff_client.get("/admin/").content.decode()
    section = page[page.index('<div class="app-jobupdates module') :]
    section = section[: section.index("</table>")]
    assert f"<a {CONSOLE_LINK}>Console</a>" in section
    assert CONSOLE_LINK in staff_client.get("/admin/jobupdates/").content.decode()


def test_every_page_declares_the_icon_and_it_is_served(client: Client, staff_client: Client):
    from django.contrib.staticfiles import finders

    for page in (
        staff_client.get("/console/"),
        staff_client.get("/"),
        staff_client.get("/admin/"),
        client.get("/admin/login/"),
    ):
        assert ICON in page.content.decode()
    icon = finders.find("jobupdates/favicon.svg")
    assert icon, "expected jobupdates/favicon.svg among the static files"
    with open(icon, encoding="utf-8") as svg:
        assert svg.read().startswith("<svg xmlns=")
