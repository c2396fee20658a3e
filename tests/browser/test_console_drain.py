"""The console through a deploy: Daphne drains (1012), the page comes back with since=.

Real Chromium, redis-server, Daphne (``python -m botrix_site.serve``, which
drains on SIGTERM) and ``manage.py run_bridge``.
"""

from __future__ import annotations

import re
import signal

import pytest
from playwright.sync_api import expect

from harness.processes import start_daphne
from tests.browser.conftest import BrowserPage
from tests.browser.test_console import expect_connected, job_row, publish, showing_a_job
from tests.conftest import Stack

pytestmark = pytest.mark.e2e


def test_console_reconnects_after_a_drain_and_gets_what_it_missed(
    restart_page: BrowserPage, site: Stack
):
    page = showing_a_job(restart_page, site)
    first_client = page.locator("#client-id").inner_text()

    site.daphne.signal(signal.SIGTERM)
    expect(page.locator("#log .kind-error", has_text="server_restarting")).to_have_count(1)
    restarting = page.locator("#log .kind-state", has_text="code 1012")
    expect(restarting).to_have_count(1)
    # jobupdates.js waits 0.5-3 s after a 1012, whatever its backoff (here at most 0.5 s).
    delay = re.search(r"next attempt in (\d+) ms", restarting.inner_text())
    assert delay, restarting.inner_text()
    assert 500 <= int(delay.group(1)) <= 3000, restarting.inner_text()
    assert site.daphne.popen.wait(timeout=20) == 0
    assert publish(site, "j-away", "processing") == 1, "expected the bridge to be subscribed"

    site.daphne, _ = start_daphne(site.env, port=site.port)
    expect_connected(page)
    assert page.locator("#client-id").inner_text() != first_client
    # Published while no server was up: only a resume with since= brings it.
    expect(job_row(page, "j-away").locator(".status")).to_have_text("processing")
    expect(job_row(page, "j-before").locator(".status")).to_have_text("queued")
    restart_page.assert_no_console_errors()
