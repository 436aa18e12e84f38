"""A shared worker's WebSockets and requests are its own, and it is a browser-level target no
page's session is told of: ``close_browser_websockets`` closes its socket,
``block_websocket_handshakes`` refuses its reconnects and ``emulate_network`` reaches its
requests (a shared worker of the page's origin, found through the browser's own session)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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
def shared_worker_page(browser: Browser, runtime_dir: Path) -> Iterator[OpenPage]:
    """A new page of the test site whose shared worker holds a socket of its own: two sockets
    open. The shared worker ends with its only page."""
    with opened_page(browser, "&shared-worker", sockets=2) as opened:
        wait_for(lambda: worker_events(opened.page) == [{"event": "open"}], 10)
        yield opened


def test_close_reaches_the_socket_a_shared_worker_holds(shared_worker_page: OpenPage) -> None:
    site = shared_worker_page.site
    codes = len(site.close_codes)
    closed = faults.close_browser_websockets(r"/ws$", 4001, **shared_worker_page.target())
    ws_url = site.url.replace("http://", "ws://") + "/ws"
    assert closed["closed"] == [ws_url, ws_url]  # the page's, then the shared worker's
    wait_for(lambda: site.close_codes[codes:] == [4001, 4001], 5)
    wait_for(
        lambda: {"event": "close", "code": 4001} in worker_events(shared_worker_page.page), 5
    )
    wait_for(lambda: site.connections == 2, 5)  # both come back


def test_block_refuses_a_shared_worker_s_reconnects_for_the_window(
    shared_worker_page: OpenPage,
) -> None:
    site = shared_worker_page.site
    codes, handshakes = len(site.close_codes), site.handshakes
    started = faults.block_websocket_handshakes(
        r"/ws$", 2.5, close_code=4002, **shared_worker_page.target()
    )
    assert len(started["closed"]) == 2 and started["workers"] == 1
    wait_for(lambda: site.close_codes[codes:] == [4002, 4002], 5)
    time.sleep(1.0)
    seen = worker_events(shared_worker_page.page)
    closes = [e["code"] for e in seen if e["event"] == "close"]
    assert closes[0] == 4002 and closes[1:4] == [1006] * 3, seen
    assert seen.count({"event": "open"}) == 1 and site.handshakes == handshakes
    wait_for(lambda: site.connections == 2, 8)  # the window ends: both come back
    assert site.handshakes == handshakes + 2
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


def test_offline_emulation_fails_a_shared_worker_s_requests(
    shared_worker_page: OpenPage,
) -> None:
    page = shared_worker_page.page
    assert page.evaluate("sharedWorkerFetch('/api/v2/from-the-shared-worker')") == "status 200"
    faults.emulate_network(offline=True, duration=30, **shared_worker_page.target())
    failed = page.evaluate("sharedWorkerFetch('/api/v2/offline')")
    assert failed == "TypeError: Failed to fetch"
    assert "/api/v2/offline" not in shared_worker_page.site.api_calls
    faults.clear_browser_faults()
    assert page.evaluate("sharedWorkerFetch('/api/v2/offline')") == "status 200"
