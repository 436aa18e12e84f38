"""Bandwidth throttling through a real mitmproxy: bytes arrive progressively at the rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chaosgenesys.proxy import actions, probes
from tests.proxy.conftest import direct_session

BODY = bytes(range(256)) * 800  # 204,800 bytes
LARGE = bytes(range(256)) * 16 * 1024  # 4 MiB


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = LARGE if self.path.startswith("/large") else BODY
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path.startswith("/chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for offset in range(0, len(body), 10_000):
                piece = body[offset : offset + 10_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    """A local HTTP/1.1 server: ``/body`` and ``/chunked`` (200 KB), ``/large`` (4 MiB)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _download(url: str, proxy: dict[str, Any]) -> tuple[bytes, list[tuple[float, int]], float]:
    """The body, (seconds since the request, bytes so far) per chunk read, total seconds."""
    session = direct_session()
    start = time.monotonic()
    arrivals: list[tuple[float, int]] = []
    received = bytearray()
    with session.get(url, proxies={"http": proxy["proxy_url"]}, stream=True, timeout=30) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(chunk_size=2048):
            received += chunk
            arrivals.append((time.monotonic() - start, len(received)))
    return bytes(received), arrivals, time.monotonic() - start


def _received_by(arrivals: list[tuple[float, int]], moment: float) -> int:
    return max((count for at, count in arrivals if at <= moment), default=0)


@pytest.mark.parametrize("path", ["/body", "/chunked"])
def test_body_arrives_progressively_at_the_rate(
    origin: str, clean_rules: dict[str, Any], path: str
) -> None:
    name = clean_rules["name"]
    _, _, unthrottled = _download(f"{origin}{path}", clean_rules)
    assert unthrottled < 0.5
    rule = actions.throttle_responses(f"^{path}$", 50, name=name)  # 50 KB/s: ~4.1 s
    body, arrivals, elapsed = _download(f"{origin}{path}", clean_rules)
    assert body == BODY
    expected = len(BODY) / 50_000
    first_at = arrivals[0][0]
    assert first_at < 0.3, arrivals[:3]  # headers and the first slice come early
    assert 0.8 * expected <= elapsed <= 1.2 * expected, elapsed
    # Progressive: bytes arrive in many pieces, at about the rate, all along.
    assert len(arrivals) >= 20
    for moment in (1.0, 2.0, 3.0):
        share = _received_by(arrivals, moment) / (50_000 * moment)
        assert 0.8 <= share <= 1.2, (moment, share)
    rate = (arrivals[-1][1] - _received_by(arrivals, 1.0)) / (arrivals[-1][0] - 1.0)
    assert 0.8 * 50_000 <= rate <= 1.2 * 50_000, rate
    stats = probes.proxy_stats(name)
    (counted,) = [r for r in stats["rules"] if r["id"] == rule["id"]]
    assert counted["stats"]["applied"] == 1
    assert counted["stats"]["injected_delay_ms"] > 0.8 * expected * 1000 - 300


def test_throttle_holds_only_its_stream(origin: str, clean_rules: dict[str, Any]) -> None:
    """While a body trickles, other requests through the proxy are answered at once."""
    actions.throttle_responses("^/body$", 50, name=clean_rules["name"])
    done: list[float] = []
    thread = threading.Thread(
        target=lambda: done.append(_download(f"{origin}/body", clean_rules)[2])
    )
    thread.start()
    try:
        time.sleep(0.5)
        quick = []
        for _ in range(5):
            start = time.monotonic()
            response = direct_session().get(
                f"{origin}/other", proxies={"http": clean_rules["proxy_url"]}, timeout=10
            )
            assert response.status_code == 200 and response.content == BODY
            quick.append(time.monotonic() - start)
        assert max(quick) < 0.5, quick
        assert not done  # the throttled one is still arriving
    finally:
        thread.join(15)
    assert done and done[0] >= 3.2


def test_large_body_is_throttled_intact(origin: str, clean_rules: dict[str, Any]) -> None:
    actions.throttle_responses("^/large$", 2000, name=clean_rules["name"])  # 2 MB/s: ~2.1 s
    body, arrivals, elapsed = _download(f"{origin}/large", clean_rules)
    assert body == LARGE
    expected = len(LARGE) / 2_000_000
    assert 0.8 * expected <= elapsed <= 1.2 * expected, elapsed
    assert arrivals[0][0] < 0.3
    half = _received_by(arrivals, expected / 2) / len(LARGE)
    assert 0.35 <= half <= 0.65, half


def test_client_that_leaves_does_not_wedge_the_proxy(
    origin: str, clean_rules: dict[str, Any]
) -> None:
    actions.throttle_responses("^/large$", 10, name=clean_rules["name"])  # would take 7 min
    session = direct_session()
    with session.get(
        f"{origin}/large", proxies={"http": clean_rules["proxy_url"]}, stream=True, timeout=10
    ) as response:
        assert len(next(response.iter_content(chunk_size=100))) > 0
    session.close()
    actions.clear_rules(clean_rules["name"])
    _, _, elapsed = _download(f"{origin}/body", clean_rules)
    assert elapsed < 0.5
