"""A cross-site iframe (its own DevTools target) is reached too, and the target of a fault is
taken from this run's browser observer when the arguments leave it out."""

from __future__ import annotations

from pathlib import Path

from chaosgenesys.browser import faults
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import OpenPage, wait_for


def _add_cross_site_frame(test_page: OpenPage) -> object:
    site = test_page.site
    before = site.connections
    frame_url = site.url.replace("127.0.0.1", "localhost") + "/?frame=1"
    test_page.page.evaluate(
        """(src) => { const f = document.createElement('iframe'); f.src = src;
                      document.body.appendChild(f); }""",
        frame_url,
    )
    wait_for(lambda: site.connections > before, 10)
    page = test_page.page

    def framed() -> bool:
        page.wait_for_timeout(20)  # the sync API takes in the browser's events during a call
        return any("frame=1" in f.url for f in page.frames)

    wait_for(framed, 10)
    frame = next(f for f in page.frames if "frame=1" in f.url)
    wait_for(lambda: any(e["event"] == "first_frame" for e in frame.evaluate("window.__events")),
             10)
    return frame


def test_requests_and_sockets_of_a_cross_site_iframe_are_reached(test_page: OpenPage) -> None:
    frame = _add_cross_site_frame(test_page)
    site = test_page.site
    faults.fail_browser_requests(r"/api/framed", 429, 30, **test_page.target())
    assert test_page.timed_call("/api/framed")[0] == 429
    assert frame.evaluate("window.callApi('/api/framed')") == 429  # type: ignore[attr-defined]
    faults.clear_browser_faults()
    assert frame.evaluate("window.callApi('/api/framed')") == 200  # type: ignore[attr-defined]
    codes = len(site.close_codes)
    answer = faults.close_browser_websockets(r"/ws$", 4002, **test_page.target())
    host = site.url.split("//")[1].split(":")
    assert sorted(answer["closed"]) == sorted(
        [f"ws://127.0.0.1:{host[1]}/ws", f"ws://localhost:{host[1]}/ws"]
    )
    wait_for(lambda: len(site.close_codes) >= codes + 2, 5)
    assert site.close_codes[codes:] == [4002, 4002]


def test_a_cross_site_iframe_added_during_the_fault_is_reached_too(test_page: OpenPage) -> None:
    faults.fail_browser_requests(r"/api/late", 503, 30, **test_page.target())
    frame = _add_cross_site_frame(test_page)  # its DevTools target appears after the fault
    # the holder is told of it (Target.attachedToTarget) and puts the fault on it within moments
    wait_for(
        lambda: frame.evaluate("window.callApi('/api/late')") == 503,  # type: ignore[attr-defined]
        5,
    )
    assert frame.evaluate("window.callApi('/api/other')") == 200  # type: ignore[attr-defined]
    assert faults.clear_browser_faults()["reverted"]
    assert frame.evaluate("window.callApi('/api/late')") == 200  # type: ignore[attr-defined]


def test_the_target_comes_from_the_run_s_observer(test_page: OpenPage, tmp_path: Path) -> None:
    marker = tmp_path / "observer"
    marker.write_text("observer")
    observer = registry.record(
        "browser-observer", "a stand-in for this run's browser observer",
        "tests.faults.reverters:remove_marker",
        {"path": str(marker), **test_page.target()},
    )
    try:
        started = faults.fail_browser_requests(r"/api/observed", 500, 30)
        assert started["page"] == test_page.page.url.split("?")[0]
        assert test_page.timed_call("/api/observed")[0] == 500
        faults.clear_browser_faults()
        assert test_page.timed_call("/api/observed")[0] == 200
    finally:
        registry.revert(observer.id)

