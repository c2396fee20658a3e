"""The admin's forms, posted as a browser does: the CSRF token from the page, then
the POST with the session and CSRF cookies (log out; run a changelist action)."""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["CLIENTS_CHANGELIST", "admin_action", "admin_logout"]

CLIENTS_CHANGELIST = "/admin/jobupdates/connectedclient/"
"""The connected-clients list of the admin."""


def _page_with_token(port: int, path: str, cookie: str) -> tuple[str, str, str]:
    """GET ``path`` with the session ``cookie``; return the page, its form's CSRF
    token and the CSRF cookie's value."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Cookie", cookie)
    page = opener.open(request, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, f"expected a CSRF token in a form of {path}"
    csrf = [c.value for c in jar if c.name == "csrftoken"]
    assert csrf, f"expected {path} to set the csrftoken cookie"
    return page, token.group(1), str(csrf[0])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Give the POST's own answer back (a redirect included), not the page it leads to."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(port: int, path: str, cookie: str, csrf: str, form: dict[str, str]) -> tuple[int, str]:
    """POST ``form`` to ``path``; return the status and the body (a redirect not followed)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=urllib.parse.urlencode(form).encode()
    )
    request.add_header("Cookie", f"{cookie}; csrftoken={csrf}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status), str(response.read().decode())
    except urllib.error.HTTPError as answer:
        return answer.code, str(answer.read().decode())


def admin_logout(port: int, cookie: str) -> float:
    """Log the session out with the admin's logout form (``POST /admin/logout/``);
    return ``time.time()`` once the response came back."""
    _page, token, csrf = _page_with_token(port, "/admin/", cookie)
    status, body = _post(port, "/admin/logout/", cookie, csrf, {"csrfmiddlewaretoken": token})
    done_at = time.time()
    assert status == 200, f"expected the admin's logged-out page, got {status}"
    assert "Logged out" in body or "logged out" in body, "expected the admin's logged-out page"
    return done_at


def admin_action(port: int, cookie: str, action: str, client_id: str) -> float:
    """Select ``client_id`` in the connected-clients list and run ``action`` on it;
    return ``time.time()`` once its answer (a redirect back to the list) came back."""
    path = f"{CLIENTS_CHANGELIST}?q={client_id}"
    page, token, csrf = _page_with_token(port, path, cookie)
    assert f'value="{client_id}"' in page, f"expected client {client_id} in the admin's list"
    form = {
        "csrfmiddlewaretoken": token,
        "action": action,
        "_selected_action": client_id,
        "index": "0",
    }
    status, _body = _post(port, path, cookie, csrf, form)
    done_at = time.time()
    assert status == 302, f"expected the action to redirect back to the list, got {status}"
    return done_at
