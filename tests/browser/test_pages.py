"""The browser tests' page reconnects its WebSocket when the server closes or drops it."""

from __future__ import annotations

import time
from typing import Any

from tests.browser.chromium import chromium
from tests.browser.pages import serve_test_page


def _events(page: Any, name: str) -> list[dict[str, Any]]:
    return [e for e in page.evaluate("window.__events") if e["event"] == name]


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_page_reconnects_after_a_close_and_a_drop() -> None:
    from playwright.sync_api import sync_playwright

    with serve_test_page() as site, chromium() as ws_url, sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(ws_url)
        page = browser.contexts[0].new_page()
        page.goto(site.url + "/")
        site.wait_connections(1)
        _wait(lambda: len(_events(page, "first_frame")) == 1)

        assert site.close_sockets(4001) == 1
        _wait(lambda: len(_events(page, "first_frame")) == 2)
        assert _events(page, "close")[0]["code"] == 4001

        assert site.drop_sockets() == 1
        _wait(lambda: len(_events(page, "first_frame")) == 3)
        assert _events(page, "close")[1]["code"] == 1006
        assert site.handshakes == 3
        assert page.evaluate("callApi('/api/v2/thing?status=503')") == 503
        assert site.api_calls == ["/api/v2/thing"]
        assert page.get_attribute('[data-cg="connection"]', "data-state") == "connected"
