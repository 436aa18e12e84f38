"""A WebSocket a dedicated worker holds is the worker's own (its ``WebSocket`` is not the
page's): ``close_browser_websockets`` closes it and ``block_websocket_handshakes`` refuses its
reconnects, seen from the worker and from the server; a worker whose code copied the
constructor when it started is reached once an observer saw it start. The network emulation of
the page reaches a worker's requests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosgenesys.browser import actions, faults
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import (
    Browser,
    OpenPage,
    opened_page,
    wait_for,
    worker_events,
)


@pytest.fixture(params=[""], ids=["worker"])
def worker_page(
    browser: Browser, runtime_dir: Path, request: pytest.FixtureRequest
) -> Iterator[OpenPage]:
    """A new page of the test site whose worker holds a socket of its own: two sockets open
    (``request.param``: more of the page's query, e.g. ``&captured``)."""
    with opened_page(browser, f"&worker{request.param}", sockets=2) as opened:
        wait_for(lambda: worker_events(opened.page) == [{"event": "open"}], 10)
        try:
            yield opened
        finally:
            actions.stop_observer()


def test_close_reaches_the_socket_a_worker_holds(worker_page: OpenPage) -> None:
    site = worker_page.site
    codes = len(site.close_codes)
    closed = faults.close_browser_websockets(r"/ws$", 4001, **worker_page.target())["closed"]
    ws_url = site.url.replace("http://", "ws://") + "/ws"
    assert closed == [ws_url, ws_url]  # the page's, then the worker's
    wait_for(lambda: site.close_codes[codes:] == [4001, 4001], 5)
    wait_for(lambda: {"event": "close", "code": 4001} in worker_events(worker_page.page), 5)
    wait_for(lambda: site.connections == 2, 5)  # both come back


def test_block_refuses_a_worker_s_reconnects_for_the_window(worker_page: OpenPage) -> None:
    site = worker_page.site
    codes, handshakes = len(site.close_codes), site.handshakes
    started = faults.block_websocket_handshakes(
        r"/ws$", 2.5, close_code=4002, **worker_page.target()
    )
    assert len(started["closed"]) == 2 and started["workers"] == 1
    wait_for(lambda: site.close_codes[codes:] == [4002, 4002], 5)
    time.sleep(1.0)
    seen = worker_events(worker_page.page)
    closes = [e["code"] for e in seen if e["event"] == "close"]
    assert closes[0] == 4002 and closes[1:4] == [1006] * 3, seen
    assert seen.count({"event": "open"}) == 1 and site.handshakes == handshakes
    # the window ends: the worker's next try is accepted, as the page's
    wait_for(lambda: site.connections == 2, 8)
    assert site.handshakes == handshakes + 2
    assert worker_events(worker_page.page).count({"event": "open"}) == 2
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


@pytest.mark.parametrize("worker_page", ["&captured"], indirect=True, ids=["captured"])
def test_a_worker_holding_its_own_websocket_is_reached_once_an_observer_saw_it_start(
    worker_page: OpenPage,
) -> None:
    site = worker_page.site
    # without an observer, the worker's copy is the native constructor: not refused
    started = faults.block_websocket_handshakes(r"/ws$", 30, **worker_page.target())
    handshakes = site.handshakes
    worker_page.page.evaluate("__workerEvents.length = 0")
    site.close_sockets(4000)
    wait_for(lambda: worker_events(worker_page.page)[-1:] == [{"event": "open"}], 5)
    assert site.handshakes > handshakes
    faults.clear_browser_faults()
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)
    # the observer reloads the page: the new worker starts held, with the guard resident
    actions.start_observer(reload_page=True, **worker_page.target())
    wait_for(lambda: site.connections == 2, 10)
    wait_for(lambda: worker_events(worker_page.page) == [{"event": "open"}], 10)
    codes, handshakes = len(site.close_codes), site.handshakes
    started = faults.block_websocket_handshakes(
        r"/ws$", 2.5, close_code=4002, **worker_page.target()
    )
    assert len(started["closed"]) == 2
    time.sleep(1.0)
    closes = [e["code"] for e in worker_events(worker_page.page) if e["event"] == "close"]
    assert closes[0] == 4002 and closes[1:4] == [1006] * 3, closes
    assert site.handshakes == handshakes and site.close_codes[codes:] == [4002, 4002]
    wait_for(lambda: site.connections == 2, 8)
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


WORKER_FETCH = """() => new Promise((resolve) => {
  const code = `fetch('${location.origin}/api/v2/from-a-new-worker')
    .then((r) => postMessage('status ' + r.status), (e) => postMessage(String(e)))`;
  const worker = new Worker(URL.createObjectURL(new Blob([code])));
  worker.onmessage = (e) => { worker.terminate(); resolve(e.data); };
})"""


def test_offline_emulation_fails_a_worker_s_requests(worker_page: OpenPage) -> None:
    faults.emulate_network(offline=True, duration=30, **worker_page.target())
    assert worker_page.page.evaluate(WORKER_FETCH) == "TypeError: Failed to fetch"
    assert "/api/v2/from-a-new-worker" not in worker_page.site.api_calls
    faults.clear_browser_faults()
    assert worker_page.page.evaluate(WORKER_FETCH) == "status 200"
