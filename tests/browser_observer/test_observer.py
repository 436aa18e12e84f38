"""The browser observer against real headless Chromium and the test page: reconnect latency
against the page's own clock, REST calls, console, UI labels, the browser going away."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from chaosgenesys.browser import actions, probes
from chaosgenesys.browser.summary import read_events
from chaosgenesys.faults import registry
from tests.browser.chromium import chromium
from tests.browser.pages import RECONNECT_MS, serve_test_page
from tests.browser_observer.conftest import alive, page_in, wait_for


def page_reconnects(page: Any) -> list[float]:
    """The page's own reconnect latencies (ms): each close to the next socket's first frame."""
    events = page.evaluate("window.__events")
    latencies, closed = [], None
    for event in events:
        if event["event"] == "close" and closed is None:
            closed = event["t"]
        elif event["event"] == "first_frame" and closed is not None:
            latencies.append(float(event["t"] - closed))
            closed = None
    return latencies


def test_reconnect_latency_matches_the_page_clock_after_a_close_and_a_drop() -> None:
    with serve_test_page() as site, chromium() as ws_url, page_in(ws_url, "about:blank") as page:
        page.goto(site.url + "/")
        site.wait_connections(1)
        started = actions.start_observer(devtools_url=ws_url, page_url_pattern="127\\.0\\.0\\.1")
        assert started["page_url"] == site.url + "/"
        assert started["devtools_url"] == ws_url
        (fault,) = registry.mine(kind="browser-observer")
        assert fault.spec["devtools_url"] == ws_url
        assert fault.spec["page_url_pattern"] == "127\\.0\\.0\\.1"
        assert fault.spec["dir"] == started["dir"] and alive(fault.spec["pid"])
        assert fault.spec["start_time"] and fault.spec["browser_pid"] == 0
        time.sleep(0.5)
        site.close_sockets(4001)  # a close frame
        wait_for(lambda: len(page_reconnects(page)) == 1, 10)
        site.wait_connections(1)
        time.sleep(0.5)
        site.drop_sockets()  # no close frame: the TCP connection cut
        wait_for(lambda: len(page_reconnects(page)) == 2, 10)
        time.sleep(0.5)
        own = sorted(page_reconnects(page))
        summary = probes.browser_summary(started["id"])
    assert all(ms >= RECONNECT_MS for ms in own), own
    url = site.url.replace("http", "ws") + "/ws"
    assert summary["reconnects"] == 2
    assert summary["reconnect_ms"][url]["count"] == 2
    measured = [summary["reconnect_p50_ms"], summary["reconnect_max_ms"]]
    assert abs(measured[0] - own[0]) <= 20 and abs(measured[1] - own[1]) <= 20, (measured, own)
    assert abs(summary["disconnected_s"] * 1000 - sum(own)) <= 40
    assert summary["websockets_opened"] >= 3 and summary["websockets_closed"] >= 2
    assert summary["zombie_s"] == 0


def test_rest_calls_console_and_ui_are_recorded_and_tokens_redacted() -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/?session=opaque-query-value")
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            site.wait_connections(1)
            assert page.evaluate("callApi('/api/v2/slow?delay_ms=300')") == 200
            assert page.evaluate("callApi('/api/v2/broken?status=503')") == 503
            page.evaluate("fetch('/elsewhere/not-api').then(r => r.status)")
            page.evaluate(
                "console.error('refresh failed: Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl "
                "at /x?access_token=SECRET-TOKEN-123&x=1')"
            )
            page.evaluate("console.warn('slow network')")
            page.evaluate("new WebSocket(location.origin.replace('http', 'ws') + '/api/no-ws')")
            page.evaluate("setPresence('Busy')")
            wait_for(lambda: probes.ui_presence(started["id"]) == "Busy", 5)
        result = actions.stop_observer()
    assert result["stopped"] == [started["id"]]
    summary = result["summaries"][started["id"]]
    text = Path(started["events"]).read_text()
    events = read_events(Path(started["events"]))
    rest = {e["path"]: e for e in events if e["event"] == "rest"}
    assert set(rest) == {"/api/v2/slow", "/api/v2/broken"}
    assert rest["/api/v2/slow"]["status"] == 200 and rest["/api/v2/slow"]["method"] == "GET"
    assert 300 <= rest["/api/v2/slow"]["latency_ms"] < 5000
    assert rest["/api/v2/broken"]["status"] == 503
    assert summary["api_calls"] == 2 and summary["api_errors"] == 1
    assert summary["api_p99_ms"] == rest["/api/v2/slow"]["latency_ms"]
    mine = [e for e in events if e["event"] == "console" and e["source"] == "console"]
    assert [e["level"] for e in mine] == ["error", "warning"]
    assert "Bearer [redacted]" in mine[0]["text"] and "access_token=[redacted]" in mine[0]["text"]
    for secret in ("SECRET-TOKEN-123", "eyJhbGciOi", "c2lnbmF0dXJl", "opaque-query-value",
                   "delay_ms"):
        assert secret not in text
    assert summary["console_errors"] >= 2  # ours and the browser's own for the 503
    assert summary["console_warnings"] == 1
    (refused,) = [e for e in events if e["event"] == "ws_frame_error"]
    assert "Unexpected response code: 200" in refused["error"]  # no 101: a WebSocket error
    assert summary["websocket_errors"] == 1 and summary["websocket_error_rate"] == 0.5
    values = [e["value"] for e in events if e["event"] == "ui" and e["name"] == "presence"]
    assert values == ["Available", "Busy"]
    assert summary["ui"] == {"presence": "Busy", "connection": "connected"}
    assert summary["running"] is False and summary["ended"] == "stopped"
    status = json.loads((Path(started["dir"]) / "status.json").read_text())
    assert status["attached"] and status["ui"]["presence"] == "Busy"
    assert status["counts"]["rest"] == 2
    assert not alive(status["browser_pid"])


def test_the_browser_closed_mid_run_ends_the_observer_and_the_summary_still_answers() -> None:
    with serve_test_page() as site:
        with chromium() as ws_url, page_in(ws_url, "about:blank") as page:
            page.goto(site.url + "/")
            site.wait_connections(1)
            started = actions.start_observer(devtools_url=ws_url, page_url_pattern="127\\.0")
            record = json.loads((Path(started["dir"]) / "observer.json").read_text())
            assert alive(record["pid"])
        wait_for(lambda: not alive(record["pid"]), 10)
    assert registry.mine(kind="browser-observer") == []  # it forgot its own record
    summary = probes.browser_summary()
    assert summary["browser_gone"] is True and summary["ended"] == "browser_gone"
    assert summary["running"] is False and summary["attached"] is True
    assert summary["ui"]["presence"] == "Available"
    assert probes.ui_presence() == "Available"
    assert actions.stop_observer()["stopped"] == []


FOLLOW = """(port) => {
  const same = document.createElement('iframe'); same.src = '/?frame=same';
  const cross = document.createElement('iframe'); cross.src = `http://localhost:${port}/`;
  document.body.append(same, cross);
  const origin = location.origin;
  // after 300 ms: a worker's very first requests may come before the observer follows it
  const code = `setTimeout(() => { fetch('${origin}/api/v2/from-worker');
    new WebSocket('${origin.replace('http', 'ws')}/ws').onmessage = () => {}; }, 300);`;
  window.__worker = new Worker(URL.createObjectURL(new Blob([code])));
}"""


def test_iframes_in_and_out_of_process_and_workers_are_followed() -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/")
        port = site.url.rsplit(":", 1)[1]
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            site.wait_connections(1)
            page.evaluate(FOLLOW, port)
            site.wait_connections(4)  # the page, both iframes and the worker
            wait_for(lambda: len([e for e in read_events(Path(started["events"]))
                                  if e["event"] == "ws_frame"]) > 12, 10)
            # the worker's fetch is written once its answer is in, which a loaded machine may
            # take a while to deliver: the stop does not wait for it
            wait_for(lambda: any(e["event"] == "rest"
                                 for e in read_events(Path(started["events"]))), 10)
        actions.stop_observer()
    events = read_events(Path(started["events"]))
    created = [e["url"] for e in events if e["event"] == "ws_created"]
    assert sorted(created) == sorted([f"ws://127.0.0.1:{port}/ws"] * 3
                                     + [f"ws://localhost:{port}/ws"])
    assert len({e["ws"] for e in events if e["event"] == "ws_created"}) == 4
    assert [e["path"] for e in events if e["event"] == "rest"] == ["/api/v2/from-worker"]
    assert [e["kind"] for e in events if e["event"] == "worker"] == ["worker"]
    assert len([e for e in events if e["event"] == "frame_followed"]) == 1  # the cross-site one


def test_a_worker_inside_a_cross_site_iframe_is_followed() -> None:
    # The page (127.0.0.1) holds a cross-site iframe (localhost) that starts a worker: the
    # worker is a child of the frame's target, not of the page's.
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/")
        port = site.url.rsplit(":", 1)[1]
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            site.wait_connections(1)
            page.evaluate(
                "(port) => { const f = document.createElement('iframe');"
                " f.src = `http://localhost:${port}/?worker`; document.body.append(f); }",
                port,
            )
            site.wait_connections(3)  # the page's, the frame's and its worker's
            wait_for(lambda: "/api/v2/from-worker" in site.api_calls, 10)
            wait_for(lambda: len([e for e in read_events(Path(started["events"]))
                                  if e["event"] == "ws_created"]) >= 3, 10)
        actions.stop_observer()
    events = read_events(Path(started["events"]))
    assert [e["event"] for e in events if e["event"] in ("frame_followed", "worker")] == [
        "frame_followed", "worker"
    ]
    created = sorted(e["url"] for e in events if e["event"] == "ws_created")
    assert created == [f"ws://127.0.0.1:{port}/ws"] + [f"ws://localhost:{port}/ws"] * 2


def test_a_worker_s_very_first_request_and_socket_are_seen() -> None:
    # The worker fetches and opens its socket in its first statements: the observer sees them
    # only if the browser holds the new worker until the observer's Network domain is on.
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/?worker")
        port = site.url.rsplit(":", 1)[1]
        site.wait_connections(2)  # the page's and the worker's
        wait_for(lambda: any(e["event"] == "rest"
                             for e in read_events(Path(started["events"]))), 10)
        actions.stop_observer()
    events = read_events(Path(started["events"]))
    assert [e["kind"] for e in events if e["event"] == "worker"] == ["worker"]
    assert [e["path"] for e in events if e["event"] == "rest"] == ["/api/v2/from-worker"]
    created = [e["url"] for e in events if e["event"] == "ws_created"]
    assert created == [f"ws://127.0.0.1:{port}/ws"] * 2


def test_a_service_worker_s_socket_is_seen_and_the_requests_it_answers_counted_once() -> None:
    # The service worker controls the page and fetches the page's /api/ requests itself: the
    # page's session sees each one already, so the worker's own fetch must not count it again.
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/?service-worker")
        port = site.url.rsplit(":", 1)[1]
        site.wait_connections(2)  # the page's and the service worker's
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            wait_for(lambda: page.evaluate("!!navigator.serviceWorker.controller"), 10)
            assert page.evaluate("callApi('/api/v2/through-the-worker')") == 200
        assert site.api_calls.count("/api/v2/through-the-worker") == 1
        wait_for(lambda: any(e["event"] == "rest"
                             for e in read_events(Path(started["events"]))), 10)
        actions.stop_observer()
    events = read_events(Path(started["events"]))
    assert [e["kind"] for e in events if e["event"] == "worker"] == ["service_worker"]
    assert [e["path"] for e in events if e["event"] == "rest"] == ["/api/v2/through-the-worker"]
    created = [e["url"] for e in events if e["event"] == "ws_created"]
    assert created == [f"ws://127.0.0.1:{port}/ws"] * 2


def test_an_observer_with_a_duration_stops_by_itself_with_its_browser() -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/", duration=2)
        status_path = Path(started["dir"]) / "status.json"
        status = json.loads(status_path.read_text())
        browser, attached_at = status["browser_pid"], status["attached_at"]
        assert alive(browser)
        # the two seconds run from when it watches, in the observer and in its record
        (record,) = registry.mine(kind="browser-observer")
        assert record.deadline == attached_at + 2 + actions.ENDING_GRACE
        wait_for(lambda: json.loads(status_path.read_text())["ended"] == "duration", 10)
        events = [json.loads(line) for line in Path(started["events"]).read_text().splitlines()]
        (stop,) = [event for event in events if event["event"] == "stop"]
        assert stop["reason"] == "duration" and stop["ts"] - attached_at >= 2 - 0.002, stop
        wait_for(lambda: not alive(browser), 10)
        wait_for(lambda: registry.mine(kind="browser-observer") == [], 5)
        observer = json.loads((Path(started["dir"]) / "observer.json").read_text())["pid"]
        wait_for(lambda: not alive(observer), 5)
        summary = probes.browser_summary(started["id"])
    assert summary["ended"] == "duration" and summary["websockets_opened"] >= 1
