"""Real clients of a running Daphne: a browser-like login and WebSocket connections."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


def login(port: int, username: str, password: str) -> str:
    """Log in through the admin login form, as a browser does; return the Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    page = opener.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "expected a CSRF token in the login form"
    form = urllib.parse.urlencode(
        {
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": token.group(1),
            "next": "/admin/",
        }
    ).encode()
    login_post = urllib.request.Request(f"{base}/admin/login/", data=form)  # noqa: S310 (http://)
    opener.open(login_post, timeout=10).read()
    cookies = {cookie.name: cookie.value for cookie in jar}
    assert "sessionid" in cookies, f"expected a session cookie after logging in as {username}"
    return f"sessionid={cookies['sessionid']}"


def ws_connect(
    port: int, cookie: str | None = None, path: str = "/ws", subprotocols: Sequence[str] = ()
) -> Any:
    """Open a WebSocket to Daphne with a same-site Origin, as a page would: offering
    permessage-deflate (as browsers do) and ``subprotocols`` if any."""
    headers = {"Cookie": cookie} if cookie else None
    return connect(
        f"ws://127.0.0.1:{port}{path}",
        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        additional_headers=headers,
        subprotocols=list(subprotocols) or None,  # type: ignore[arg-type]
        open_timeout=10,
    )


async def recv_json(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
    """Receive one text frame and decode it."""
    frame = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(frame, str), f"expected a text frame, got {frame!r}"
    value: dict[str, Any] = json.loads(frame)
    return value


async def welcomed(ws: ClientConnection) -> str:
    """Consume the welcome frame; return the client id."""
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome", welcome
    assert re.fullmatch(r"[0-9a-f]{32}", welcome["client_id"]), welcome
    return str(welcome["client_id"])
