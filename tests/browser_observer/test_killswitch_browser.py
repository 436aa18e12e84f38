"""The kill switch counts the observed browser page as a desktop: its REST calls join the API
latency sample, its WebSocket's drops the WebSocket error rate."""

from __future__ import annotations

from typing import Any

from chaosgenesys.browser import actions
from chaosgenesys.controls import killswitch
from chaosgenesys.platform import metrics
from tests.browser.pages import serve_test_page
from tests.browser_observer.conftest import page_in, wait_for


def _sample(watcher: killswitch.Watcher, test: Any) -> dict[str, Any] | None:
    watcher.check()
    sample = watcher.last_sample
    return sample if test(sample) else None


def test_the_browser_page_is_a_source_of_api_latency_and_websocket_errors() -> None:
    metrics.reset()
    thresholds = killswitch.Thresholds(max_api_p99_ms=250, max_websocket_error_rate=0.05)
    watcher = killswitch.Watcher(thresholds)
    try:
        with serve_test_page() as site:
            started = actions.start_observer(open_url=site.url + "/")
            with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
                site.wait_connections(1)
                ready = wait_for(lambda: _sample(
                    watcher, lambda s: s["websocket"]["agents"] == 1), 10)
                assert ready["websocket"]["error_rate"] == 0
                assert ready["api"]["calls"] == 0

                assert page.evaluate("callApi('/api/v2/users/me?delay_ms=400')") == 200
                slow = wait_for(lambda: _sample(
                    watcher, lambda s: s["api"]["browser_calls"] == 1), 10)
                assert slow["api"]["p99_ms"] >= 400 and slow["api"]["over"] is True

                site.close_sockets(4001)
                dropped = wait_for(lambda: _sample(
                    watcher, lambda s: s["websocket"]["in_error"]), 10)
                assert dropped["websocket"]["in_error"] == [f"browser:{started['id']}"]
                assert dropped["websocket"]["error_rate"] == 1.0
                assert dropped["websocket"]["over"] is True
                # The page reconnects (its own logic, 100 ms later): no longer in error.
                back = wait_for(lambda: _sample(
                    watcher, lambda s: s["websocket"]["error_rate"] == 0), 10)
                assert back["websocket"]["agents"] == 1
            actions.stop_observer()
    finally:
        watcher.stop()
        metrics.reset()
