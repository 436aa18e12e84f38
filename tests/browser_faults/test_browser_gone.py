"""A browser that goes away mid-fault leaves nothing running: the holder sees it go and exits.
(A module of its own: it runs its own Chromium and Playwright, none of the shared fixture's.)"""

from __future__ import annotations

from pathlib import Path

from chaosgenesys.browser import faults
from tests.browser_faults.conftest import holder_running, wait_for


def test_a_browser_that_goes_away_leaves_no_holder_running(runtime_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import chromium
    from tests.browser.pages import serve_test_page

    with serve_test_page() as site:
        with chromium() as ws_url:
            playwright = sync_playwright().start()
            try:
                browser = playwright.chromium.connect_over_cdp(ws_url)
                browser.contexts[0].new_page().goto(site.url + "/?gone=1")
                started = faults.delay_browser_requests(
                    "/api/", 100, 60, devtools_url=ws_url, page_url_pattern="gone=1"
                )
                assert holder_running(started["pid"])
            finally:
                playwright.stop()
        # the browser is stopped: the holder sees it go and exits by itself
        wait_for(lambda: not holder_running(started["pid"]), 10)
    assert faults.clear_browser_faults()["reverted"] == [started["id"]]
