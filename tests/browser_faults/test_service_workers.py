"""A service worker's WebSockets and requests are its own, not the page's: Chromium ties the
service worker to the page's session, ``close_browser_websockets`` closes its socket and
``block_websocket_handshakes`` refuses its reconnects (seen from the worker and from the
server), and ``delay``/``fail_browser_requests`` and ``emulate_network`` reach the requests it
makes, those it makes for the page it answers among them (which the page's own ``Fetch`` and
emulation do not see)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.browser import faults
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import (
    Browser,
    OpenPage,
    opened_page,
    wait_for,
    worker_events,
)


@pytest.fixture
def service_worker_page(browser: Browser, runtime_dir: Path) -> Iterator[OpenPage]:
    """A new page of the test site with its service worker's socket open too (two sockets);
    the service worker is stopped and unregistered after, its socket gone, so that no other
    page of the site is ever controlled by it."""
    before = browser.site.connections
    with opened_page(browser, "&service-worker", sockets=2) as opened:
        try:
            wait_for(lambda: worker_events(opened.page) == [{"event": "open"}], 10)
            yield opened
        finally:
            opened.page.evaluate("stopServiceWorker()")
            wait_for(lambda: browser.site.connections <= before + 1, 10)


def test_close_reaches_the_socket_a_service_worker_holds(service_worker_page: OpenPage) -> None:
    site = service_worker_page.site
    codes = len(site.close_codes)
    closed = faults.close_browser_websockets(r"/ws$", 4001, **service_worker_page.target())
    ws_url = site.url.replace("http://", "ws://") + "/ws"
    assert closed["closed"] == [ws_url, ws_url]  # the page's, then the service worker's
    wait_for(lambda: site.close_codes[codes:] == [4001, 4001], 5)
    wait_for(
        lambda: {"event": "close", "code": 4001} in worker_events(service_worker_page.page), 5
    )
    wait_for(lambda: site.connections == 2, 5)  # both come back


def test_block_refuses_a_service_worker_s_reconnects_for_the_window(
    service_worker_page: OpenPage,
) -> None:
    site = service_worker_page.site
    codes, handshakes = len(site.close_codes), site.handshakes
    started = faults.block_websocket_handshakes(
        r"/ws$", 2.5, close_code=4002, **service_worker_page.target()
    )
    assert len(started["closed"]) == 2 and started["workers"] == 1
    wait_for(lambda: site.close_codes[codes:] == [4002, 4002], 5)
    time.sleep(1.0)
    seen = worker_events(service_worker_page.page)
    closes = [e["code"] for e in seen if e["event"] == "close"]
    assert closes[0] == 4002 and closes[1:4] == [1006] * 3, seen
    assert seen.count({"event": "open"}) == 1 and site.handshakes == handshakes
    # the window ends: the service worker's next try is accepted, as the page's
    wait_for(lambda: site.connections == 2, 8)
    assert site.handshakes == handshakes + 2
    # the service worker tells its pages through clients.matchAll: after the server sees it
    wait_for(lambda: worker_events(service_worker_page.page).count({"event": "open"}) == 2, 5)
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


def test_a_service_worker_that_starts_during_the_window_is_refused_from_its_first_try(
    service_worker_page: OpenPage,
) -> None:
    # The holder holds the new service worker until the guard is in its global scope: a held
    # service worker answers nothing before it is let go, so the guard is only sent, and is
    # there before the worker's own script runs.
    site, page = service_worker_page.site, service_worker_page.page
    started = faults.block_websocket_handshakes(r"/ws$", 3, **service_worker_page.target())
    handshakes = site.handshakes
    page.evaluate("startServiceWorker('/sw.js?second')")
    second = lambda: [  # noqa: E731
        e for e in worker_events(page) if e.get("sw") == "?second"
    ]
    wait_for(lambda: len(second()) >= 3, 5)
    assert all(e == {"event": "close", "code": 1006, "sw": "?second"} for e in second()[:3])
    assert site.handshakes == handshakes
    assert started["workers"] == 1
    # the window ends: its next try is accepted
    wait_for(lambda: {"event": "open", "sw": "?second"} in second(), 8)
    assert site.handshakes == handshakes + 1
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


def _controlled(opened: OpenPage) -> Any:
    wait_for(lambda: opened.page.evaluate("!!navigator.serviceWorker.controller"), 10)
    return opened.page


def test_fail_answers_the_requests_a_service_worker_makes_for_the_page(
    service_worker_page: OpenPage,
) -> None:
    page = _controlled(service_worker_page)
    started = faults.fail_browser_requests(
        r"/api/v2/failed", 503, 30, **service_worker_page.target()
    )
    assert page.evaluate("callApi('/api/v2/failed')") == 503
    assert page.evaluate("callApi('/api/v2/passed')") == 200
    assert "/api/v2/failed" not in service_worker_page.site.api_calls
    faults.clear_browser_faults()
    assert page.evaluate("callApi('/api/v2/failed')") == 200
    assert started["kind"] == "fail"


def test_delay_holds_the_requests_a_service_worker_makes_for_the_page(
    service_worker_page: OpenPage,
) -> None:
    page = _controlled(service_worker_page)
    timed = (
        "async (p) => { const t = performance.now(); await callApi(p);"
        " return performance.now() - t; }"
    )
    faults.delay_browser_requests(r"/api/v2/slow", 600, 30, **service_worker_page.target())
    assert page.evaluate(timed, "/api/v2/slow") >= 600
    assert page.evaluate(timed, "/api/v2/fast") < 600
    faults.clear_browser_faults()


def test_offline_emulation_fails_a_service_worker_s_requests(
    service_worker_page: OpenPage,
) -> None:
    page = _controlled(service_worker_page)
    faults.emulate_network(offline=True, duration=30, **service_worker_page.target())
    failed = page.evaluate("callApi('/api/v2/offline').catch((e) => String(e))")
    assert failed == "TypeError: Failed to fetch"
    assert "/api/v2/offline" not in service_worker_page.site.api_calls
    faults.clear_browser_faults()
    assert page.evaluate("callApi('/api/v2/offline')") == 200
