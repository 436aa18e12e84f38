"""The shared Chromium launcher gives a browser Playwright drives over CDP."""

from __future__ import annotations

from tests.browser.chromium import chromium


def test_chromium_launcher_connects_over_cdp() -> None:
    from playwright.sync_api import sync_playwright

    with chromium() as ws_url, sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(ws_url)
        page = browser.contexts[0].new_page()
        page.set_content("<p id=x>ok</p>")
        assert page.inner_text("#x") == "ok"
        browser.close()
