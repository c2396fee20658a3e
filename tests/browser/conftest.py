"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and the stack.

The browser is ``/usr/bin/chromium`` from Debian's package (``make test``
installs it through the Makefile's ``system-deps``); Playwright's own browser
download does not work here and is never used. Without that binary every
browser test is skipped with a loud reason, except under CI (``CI`` set),
where it is a failure: CI must run them.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from botrix_site.redis_server import RedisServer
from harness.processes import child_env, start_bridge, start_daphne
from tests.conftest import STAFF, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="package")  # sync Playwright runs a loop: stop it before other tests
def browser() -> Iterator[Browser]:
    """One headless Chromium for the browser tests."""
    if not CHROMIUM.exists():
        reason = (
            f"!!! {CHROMIUM} is missing: the browser tests are SKIPPED. Install Debian's "
            "chromium package (`make system-deps`, as root) to run them. !!!"
        )
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason.replace("SKIPPED", "required under CI"), pytrace=False)
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def _site(redis_server: RedisServer, database: str) -> Iterator[Stack]:
    # Daphne serves /static/ only with DEBUG on (botrix_site/asgi.py); in
    # production nginx serves the collected files (docker/nginx). So this Daphne
    # runs with DJANGO_DEBUG=1; all else is as deployed, with the fast-path layer.
    env = child_env(REDIS_URL=redis_server.url, DATABASE_URL=database, DJANGO_DEBUG="1")
    daphne, port = start_daphne(env)
    try:
        bridge = start_bridge(env)
    except BaseException:
        daphne.stop()
        raise
    running = Stack(redis_server, env, daphne, port, bridge)
    try:
        yield running
    finally:
        running.bridge.stop()
        running.daphne.stop()


@pytest.fixture(scope="module")
def live_site(e2e_database: str) -> Iterator[Stack]:
    """Redis, Daphne and the bridge for the tests of a module that restart nothing."""
    with RedisServer() as server:
        yield from _site(server, e2e_database)


@pytest.fixture
def site(redis_server: RedisServer, e2e_database: str) -> Iterator[Stack]:
    """Redis, Daphne and the bridge of one test, which may stop and restart them."""
    yield from _site(redis_server, e2e_database)


@dataclass
class BrowserPage:
    """A page, with every console error and uncaught exception it produced.

    Attributes:
        page: The Playwright page.
        base: The site's base URL.
        errors: Console messages of type ``error`` and page errors, as text.
        failed_requests: Requests that failed (network error, or an answer with a
            status of 400 or more), as text.
        allowed: Patterns of errors a test expects (such as the browser's own
            report of a refused WebSocket while Daphne is down).
    """

    page: Page
    base: str
    errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console errors matching ``pattern``; they do not fail the test."""
        self.allowed.append(re.compile(pattern))

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]

    def assert_no_console_errors(self) -> None:
        unexpected = self.unexpected_errors()
        assert not unexpected, "expected no console errors, got:\n" + "\n".join(unexpected)


def open_page(browser: Browser, base: str, viewport: dict[str, int] = DESKTOP) -> BrowserPage:
    """A new context and page that records console errors and page errors."""
    context = browser.new_context(viewport=viewport, base_url=base)
    context.set_default_timeout(10_000)
    page = context.new_page()
    recorded = BrowserPage(page, base)
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and recorded.errors.append(f"console: {message.text} at {message.location}")
        ),
    )
    page.on("pageerror", lambda error: recorded.errors.append(f"pageerror: {error}"))
    page.on(
        "requestfailed",
        lambda request: recorded.failed_requests.append(
            f"{request.method} {request.url}: {request.failure}"
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status >= 400
            and recorded.failed_requests.append(
                f"{response.request.method} {response.url}: status {response.status}"
            )
        ),
    )
    return recorded


@pytest.fixture
def console_page(browser: Browser, live_site: Stack) -> Iterator[BrowserPage]:
    """A fresh desktop page on the shared site, not yet logged in."""
    recorded = open_page(browser, f"http://127.0.0.1:{live_site.port}")
    yield recorded
    recorded.page.context.close()


@pytest.fixture
def restart_page(browser: Browser, site: Stack) -> Iterator[BrowserPage]:
    """A fresh desktop page on a site of its own, which the test may restart."""
    recorded = open_page(browser, f"http://127.0.0.1:{site.port}")
    yield recorded
    recorded.page.context.close()


def log_in(recorded: BrowserPage, path: str = "/console/", user: tuple[str, str] = STAFF) -> None:
    """Open ``path`` as an anonymous user, get sent to the admin login, log in there."""
    page = recorded.page
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/console/"))
    page.fill("#id_username", user[0])
    page.fill("#id_password", user[1])
    page.click("input[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(path.split("?")[0])))
