"""WebSocket faults through DevTools, seen from the page and from the server: new handshakes
refused for a window (open sockets untouched, reconnection after), live sockets closed with a
code, and what network-condition emulation does and does not reach."""

from __future__ import annotations

import time

from chaosgenesys.browser import faults, probes
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import OpenPage, holder_running, wait_for


def test_handshakes_are_refused_for_the_window_then_the_page_reconnects(
    test_page: OpenPage,
) -> None:
    site = test_page.site
    since = test_page.count()
    started = faults.block_websocket_handshakes(r"/ws$", 2.5, **test_page.target())
    assert started["kind"] == "block" and started["url_pattern"] == "/ws$"
    assert started["workers"] == 0
    # the window runs from when the fault is in force (the activity's return), however long
    # attaching took
    record = registry.get(started["id"])
    assert record is not None and record.deadline is not None
    assert 2.2 <= record.deadline - time.time() <= 2.5
    time.sleep(0.4)
    assert site.connections == 1  # the open socket is untouched
    assert [e["event"] for e in test_page.events(since)] == []
    handshakes = site.handshakes
    site.close_sockets(4000)  # the page reconnects every 100 ms: each attempt refused
    time.sleep(1.0)
    seen = test_page.events(since)
    assert site.handshakes == handshakes and site.connections == 0
    refused = [e for e in seen if e["event"] == "close" and e["code"] == 1006]
    assert len(refused) >= 3 and sum(e["event"] == "error" for e in seen) >= 3
    assert not any(e["event"] == "open" for e in seen)
    # the window ends: the next attempt is accepted
    wait_for(lambda: site.connections == 1, 8)
    assert site.handshakes == handshakes + 1
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)
    wait_for(lambda: not holder_running(started["pid"]), 5)
    assert "[native code]" in test_page.page.evaluate("String(window.WebSocket)")
    assert test_page.page.evaluate("'__chaosgenesysWsGuard' in window") is False


def test_a_close_code_closes_the_open_socket_once_the_refusals_are_in_force(
    test_page: OpenPage,
) -> None:
    site = test_page.site
    since, codes, handshakes = test_page.count(), len(site.close_codes), site.handshakes
    started = faults.block_websocket_handshakes(
        r"/ws$", 2.5, close_code=4002, close_reason="cut", **test_page.target()
    )
    ws_url = site.url.replace("http://", "ws://") + "/ws"
    assert started["closed"] == [ws_url] and started["close_code"] == 4002
    # closed by the page with the code, and every try of its reconnect logic (each 100 ms)
    # refused from the first one on
    wait_for(lambda: site.close_codes[codes:] == [4002], 5)
    time.sleep(1.0)
    seen = test_page.events(since)
    closes = [e for e in seen if e["event"] == "close"]
    assert closes[0]["code"] == 4002
    assert len([e for e in closes[1:] if e["code"] == 1006]) >= 3
    assert site.handshakes == handshakes and not any(e["event"] == "open" for e in seen)
    # the window ends: the next try is accepted
    wait_for(lambda: site.connections == 1, 8)
    assert site.handshakes == handshakes + 1
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)


def test_browser_faults_counts_the_handshakes_refused(test_page: OpenPage) -> None:
    since = test_page.count()
    started = faults.block_websocket_handshakes(r"/ws$", 60, **test_page.target())
    assert probes.browser_faults()["faults"][0]["matched"] == 0
    test_page.site.close_sockets(4000)  # the page reconnects every 100 ms: each try refused

    def refusals() -> int:
        return sum(e["event"] == "close" and e["code"] == 1006 for e in test_page.events(since))

    wait_for(lambda: refusals() >= 3, 5)
    seen = refusals()
    # the holder reads the guard's count each tick (0.25 s) and writes it when it changed
    wait_for(lambda: probes.browser_faults()["matched"] >= seen, 3)
    (fault,) = probes.browser_faults()["faults"]
    assert fault["id"] == started["id"] and fault["kind"] == "block"
    assert fault["matched"] >= seen >= 3, (fault, seen)
    faults.clear_browser_faults()
    wait_for(lambda: test_page.site.connections == 1, 5)


def test_a_killed_holder_refuses_nothing_after_its_lease(test_page: OpenPage) -> None:
    import os
    import signal

    started = faults.block_websocket_handshakes(r"/ws$", 60, **test_page.target())
    os.kill(started["pid"], signal.SIGKILL)  # no undo: the page's guard must lapse alone
    wait_for(lambda: not holder_running(started["pid"]), 5)
    time.sleep(1.6)
    handshakes = test_page.site.handshakes
    test_page.site.close_sockets(4000)
    wait_for(lambda: test_page.site.handshakes > handshakes, 5)
    wait_for(lambda: test_page.site.connections == 1, 5)
    faults.clear_browser_faults()


def test_close_with_a_code_is_seen_by_the_page_and_the_server(test_page: OpenPage) -> None:
    site = test_page.site
    since, codes = test_page.count(), len(site.close_codes)
    assert faults.close_browser_websockets(r"/nothing$", 4001, **test_page.target())[
        "closed"
    ] == []
    answer = faults.close_browser_websockets(r"/ws$", 4001, "chaos", **test_page.target())
    ws_url = site.url.replace("http://", "ws://") + "/ws"
    assert answer["closed"] == [ws_url] and answer["code"] == 4001
    wait_for(lambda: any(e["event"] == "close" for e in test_page.events(since)), 5)
    closes = [e for e in test_page.events(since) if e["event"] == "close"]
    assert closes[0]["code"] == 4001
    assert site.close_codes[codes:] == [4001]
    wait_for(lambda: site.connections == 1, 5)  # its own reconnect logic ran
    assert registry.mine(kind=faults.KIND) == []  # nothing lasting, nothing recorded


def _echo_ms(test_page: OpenPage) -> float:
    """Round trip of one text frame on the page's open socket, measured in the page."""
    return float(
        test_page.page.evaluate(
            """() => new Promise((resolve) => {
                const ws = window.__socket; const text = 'echo-' + Math.random();
                const start = performance.now();
                const on = (m) => { if (m.data === text) {
                    ws.removeEventListener('message', on); resolve(performance.now() - start); } };
                ws.addEventListener('message', on); ws.send(text);
            })"""
        )
    )


RTC = """async () => {
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const channel = a.createDataChannel('echo');
  b.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(m.data); };
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription);
  await new Promise((resolve) => { channel.onopen = resolve; });
  window.__rtcEcho = () => new Promise((resolve) => {
    const start = performance.now();
    channel.onmessage = () => resolve(performance.now() - start);
    channel.send('ping');
  });
}"""


def test_latency_emulation_slows_requests_not_open_websockets_nor_webrtc(
    test_page: OpenPage,
) -> None:
    test_page.page.evaluate(RTC)  # a WebRTC data channel between two peers of the page
    started = faults.emulate_network(
        latency_ms=800, duration=30, devtools_url=test_page.browser.http_url,
        page_url_pattern=test_page.pattern,
    )
    assert started["kind"] == "emulate" and started["latency_ms"] == 800
    status, slow = test_page.timed_call("/api/emulated")
    assert status == 200 and slow >= 750
    # it slows everything: nothing to count
    assert probes.browser_faults()["faults"] == [
        {"id": started["id"], "kind": "emulate", "url_pattern": "", "matched": None,
         "passed": None}
    ]
    assert _echo_ms(test_page) < 400  # an open WebSocket ignores the emulation
    assert test_page.page.evaluate("window.__rtcEcho()") < 400  # and so does WebRTC
    faults.clear_browser_faults()
    status, fast = test_page.timed_call("/api/emulated")
    assert status == 200 and fast < 400


def test_offline_emulation_fails_requests_and_handshakes_and_silences_the_open_socket(
    test_page: OpenPage,
) -> None:
    site = test_page.site
    test_page.page.evaluate(RTC)
    since = test_page.count()
    faults.emulate_network(
        offline=True, duration=30, devtools_url=test_page.browser.http_url,
        page_url_pattern=test_page.pattern,
    )
    assert "Failed to fetch" in str(test_page.timed_call("/api/offline")[0])
    # Chromium 156: the open socket is neither closed nor errored, but no frame moves (a zombie)
    test_page.page.evaluate(
        "window.__ticks = 0; window.__socket.addEventListener('message', () => window.__ticks++)"
    )
    time.sleep(1.0)  # the server sends a frame every 200 ms
    assert test_page.page.evaluate("window.__ticks") == 0
    assert site.connections == 1 and test_page.events(since) == []
    assert test_page.page.evaluate("window.__rtcEcho()") < 400  # WebRTC ignores it
    handshakes = site.handshakes
    code = test_page.page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
            ws.onclose = (e) => resolve(e.code);
        })"""
    )
    assert code == 1006 and site.handshakes == handshakes  # a new handshake does not get out
    faults.clear_browser_faults()
    assert test_page.timed_call("/api/offline")[0] == 200
    assert site.connections == 1 and _echo_ms(test_page) < 400  # the same socket goes on
    assert test_page.events(since) == []


def _download_ms(test_page: OpenPage, path: str) -> float:
    """Milliseconds to fetch ``path`` and read its whole body, measured in the page."""
    return float(
        test_page.page.evaluate(
            """async (path) => { const start = performance.now();
                                 await (await fetch(path)).text();
                                 return performance.now() - start; }""",
            path,
        )
    )


def test_download_throughput_emulation_slows_a_response_body(test_page: OpenPage) -> None:
    path = "/api/" + "x" * 6000  # the answer echoes the path: about 6 kB
    assert _download_ms(test_page, path) < 1000
    started = faults.emulate_network(
        download_kbps=48, duration=30, devtools_url=test_page.browser.http_url,
        page_url_pattern=test_page.pattern,
    )
    assert started["download_kbps"] == 48 and started["upload_kbps"] == 0
    assert _download_ms(test_page, path) >= 1000  # 6 kB at 6 kB/s, with the request's own
    faults.clear_browser_faults()
    assert _download_ms(test_page, path) < 1000
