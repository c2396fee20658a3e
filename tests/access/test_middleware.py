"""The origin rule and token discovery (the middleware is tested end to end)."""

from __future__ import annotations

import pytest

from jobupdates.access.middleware import offered_token, origin_allowed, origin_hosts
from tests.support.sessions import session_of

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
    from jobupdates.access.middleware import _allowed_hosts

    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    assert origin_allowed(
        "http://localhost:8000", allowed_origins=(), allowed_hosts=_allowed_hosts()
    )
    settings.DEBUG = False
    assert _allowed_hosts() == []


@pytest.mark.parametrize(
    ("hosts", "origin", "allowed"),
    [
        (["*"], "https://evil.example", False),
        (["*"], "http://127.0.0.1:8000", False),
        (["*", "app.example.com"], "https://app.example.com", True),
        (["*", "app.example.com"], "https://evil.example", False),
    ],
)
def test_a_wildcard_in_allowed_hosts_never_allows_an_origin(hosts, origin, allowed):
    """Serving any Host must not let any site's page ride on a user's cookie."""
    assert origin_allowed(origin, allowed_origins=(), allowed_hosts=hosts) is allowed


def test_only_an_explicit_star_origin_allows_any_site():
    assert origin_allowed("https://evil.example", allowed_origins=("*",), allowed_hosts=["*"])


def test_origin_hosts_drop_the_wildcard_and_fall_back_to_local_hosts_in_debug():
    assert origin_hosts(["*"], debug=False) == []
    assert origin_hosts(["*"], debug=True) == [".localhost", "127.0.0.1", "[::1]"]
    assert origin_hosts(["*", "app.example.com"], debug=True) == ["app.example.com"]
    assert origin_hosts([], debug=True) == [".localhost", "127.0.0.1", "[::1]"]


def test_the_middleware_ignores_a_wildcard_allowed_host(settings):
    from jobupdates.access.middleware import _allowed_hosts

    settings.ALLOWED_HOSTS = ["*"]
    settings.DEBUG = False
    assert not origin_allowed(
        "https://evil.example", allowed_origins=(), allowed_hosts=_allowed_hosts()
    )


def test_empty_allowed_hosts_in_debug_allow_local_pages_only(settings):
    """What docs/troubleshooting.md says: `make run` pages work, other sites do not."""
    from jobupdates.access.middleware import _allowed_hosts

    settings.ALLOWED_HOSTS = []
    settings.DEBUG = True
    hosts = _allowed_hosts()
    for origin in ("http://localhost:8000", "http://app.localhost", "http://127.0.0.1:8000"):
        assert origin_allowed(origin, allowed_origins=(), allowed_hosts=hosts), origin
    assert not origin_allowed("http://192.168.1.5:8000", allowed_origins=(), allowed_hosts=hosts)


def test_job_forbidden_message_escapes_and_bounds_job_ids():
    from jobupdates.access.gate import JOB_ID_LIMIT, JOBS_NAMED, job_forbidden_message

    forged = "a\nCRITICAL django.security.SuspiciousOperation: forged"
    message = job_forbidden_message([forged])
    assert "\n" not in message
    assert message == f"not allowed to receive job(s) {forged!r}"
    long_ids = [f"{n}-" + "x" * 253 for n in range(100)]
    message = job_forbidden_message(long_ids)
    assert message.endswith(f" and {100 - JOBS_NAMED} more")
    assert len(message) < JOBS_NAMED * (JOB_ID_LIMIT + 40) + 60
    assert "'0-xxx" in message
    assert "'4-xxx" in message
    assert "'5-" not in message


def _scope(cookie: str | None = None, *subprotocols: str) -> dict:
    headers = [(b"origin", b"http://127.0.0.1:8000")]
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    return {"type": "websocket", "headers": headers, "subprotocols": list(subprotocols)}


@pytest.mark.django_db(transaction=True)
async def test_identify_finds_the_session_user_in_one_step(settings):
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    from jobupdates.access.middleware import ORIGIN_OK, identify

    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    user = await sync_to_async(User.objects.create_user)("ada", password="pw-12345678")
    key = await sync_to_async(session_of)(user)
    scope = _scope(f"other=1; {settings.SESSION_COOKIE_NAME}={key}")
    await identify(scope)
    assert scope["user"].pk == user.pk
    assert scope[ORIGIN_OK] is True
    assert "session" not in scope, "expected the session not to be kept"

    for cookie in (None, f"{settings.SESSION_COOKIE_NAME}=unknown-key", "other=1"):
        scope = _scope(cookie)
        await identify(scope)
        assert not scope["user"].is_authenticated, cookie


@pytest.mark.django_db(transaction=True)
async def test_a_session_whose_password_changed_is_anonymous(settings):
    from asgiref.sync import sync_to_async
    from django.contrib.auth.models import User

    from jobupdates.access.middleware import identify

    user = await sync_to_async(User.objects.create_user)("bob", password="pw-12345678")
    key = await sync_to_async(session_of)(user)
    user.set_password("another-pw-1234")
    await sync_to_async(user.save)()
    scope = _scope(f"{settings.SESSION_COOKIE_NAME}={key}")
    await identify(scope)
    assert not scope["user"].is_authenticated


async def test_a_bad_token_is_recorded_and_the_cookie_is_not_read(settings):
    from jobupdates.access.middleware import AUTH_ERROR, identify
    from jobupdates.access.tokens import TOKEN_PREFIX

    scope = _scope(f"{settings.SESSION_COOKIE_NAME}=whatever", TOKEN_PREFIX + "garbage")
    await identify(scope)  # no database: the cookie is never looked up
    assert scope[AUTH_ERROR]
    assert not scope["user"].is_authenticated
