"""``block_websocket_handshakes`` against a page whose WebSocket code copied the constructor when
it loaded (as the official streaming client does): not reached on a page loaded before any
observer, reached once the observer watched the page load (the guard resident before the page's
scripts), and the resident guard passes sockets through when no fault is in force."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosgenesys.browser import actions, faults
from chaosgenesys.browser.summary import read_events
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import (
    Browser,
    OpenPage,
    holder_running,
    opened_page,
    wait_for,
)


@pytest.fixture
def captured_page(browser: Browser, runtime_dir: Path) -> Iterator[OpenPage]:
    """A page of the test site whose socket code holds its own copy of ``WebSocket``."""
    with opened_page(browser, "&captured") as opened:
        try:
            yield opened
        finally:
            actions.stop_observer()


def refused_for_the_window(page: OpenPage, seconds: float) -> dict[str, object]:
    """Block for ``seconds``, drop the page's socket and report what its reconnects met."""
    site = page.site
    started = faults.block_websocket_handshakes(r"/ws$", seconds, **page.target())
    since, handshakes = page.count(), site.handshakes
    site.close_sockets(4000)
    time.sleep(1.0)
    seen = page.events(since)
    return {
        "started": started,
        "handshakes_in_window": site.handshakes - handshakes,
        "refused": sum(e["event"] == "close" and e["code"] == 1006 for e in seen),
    }


def test_a_library_holding_its_own_websocket_is_not_reached_without_an_observer(
    captured_page: OpenPage,
) -> None:
    outcome = refused_for_the_window(captured_page, 2.0)
    assert outcome["started"]["reaches_libraries"] is False
    assert outcome["handshakes_in_window"] >= 1 and outcome["refused"] == 0
    faults.clear_browser_faults()


def test_once_the_observer_saw_the_page_load_the_library_is_refused_then_reconnects(
    captured_page: OpenPage,
) -> None:
    site = captured_page.site
    watched = actions.start_observer(reload_page=True, **captured_page.target())
    assert watched["ws_guard_resident"] is True
    wait_for(lambda: site.connections == 1, 10)  # the reloaded page connected through the guard
    outcome = refused_for_the_window(captured_page, 2.5)
    assert outcome["started"]["reaches_libraries"] is True
    assert outcome["handshakes_in_window"] == 0 and outcome["refused"] >= 3
    handshakes = site.handshakes
    wait_for(lambda: site.connections == 1, 8)  # the window ends: the next attempt goes through
    assert site.handshakes == handshakes + 1
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)
    wait_for(lambda: not holder_running(outcome["started"]["pid"]), 5)
    # the observer reports each refused attempt as one to the endpoint the page asked for,
    # and the outage as over once the page is back
    from chaosgenesys.browser import probes

    created = [e for e in read_events(Path(watched["events"])) if e["event"] == "ws_created"]
    refused = [e for e in created if e.get("refused_by_fault")]
    assert len(refused) >= 3
    assert {e["url"] for e in refused} == {site.url.replace("http", "ws", 1) + "/ws"}
    # the observer writes the page's first frame on the new socket as it sees it: on a busy
    # machine a moment after the server counted the connection
    wait_for(lambda: not probes.browser_summary()["disconnected_now"], 5)
    summary = probes.browser_summary()
    assert summary["disconnected_now"] is False and summary["reconnects"] >= 1
    assert 1.5 <= summary["disconnected_s"] < 6  # the rest of the 2.5 s window, and one retry
    # the resident guard stays in the document, without a rule: it refuses nothing
    assert captured_page.page.evaluate("window.__chaosgenesysWsGuard.resident") is True
    since = site.handshakes
    site.close_sockets(4000)
    wait_for(lambda: site.handshakes > since and site.connections == 1, 5)


def test_reload_page_is_refused_with_open_url(browser: Browser, runtime_dir: Path) -> None:
    from chaoslib.exceptions import ActivityFailed

    with pytest.raises(ActivityFailed, match="reload_page"):
        actions.start_observer(open_url=browser.site.url + "/", reload_page=True)
    with pytest.raises(ActivityFailed, match="reload_page"):
        actions.start_observer(
            devtools_url=browser.http_url, page_url_pattern="x", reload_page="yes"
        )
    assert not registry.active()


def test_a_page_reloaded_during_the_window_starts_guarded(captured_page: OpenPage) -> None:
    """The desktop reloading mid-fault (a user pressing F5) meets the refusal from its first
    connect: the holder's guard goes into each new document before the page's scripts."""
    site = captured_page.site
    started = faults.block_websocket_handshakes(r"/ws$", 3.0, **captured_page.target())
    handshakes = site.handshakes
    captured_page.page.reload()
    time.sleep(0.8)
    seen = captured_page.events()
    assert site.handshakes == handshakes and site.connections == 0
    assert any(e["event"] == "close" and e["code"] == 1006 for e in seen)
    wait_for(lambda: site.connections == 1, 8)
    wait_for(lambda: not holder_running(started["pid"]), 5)
