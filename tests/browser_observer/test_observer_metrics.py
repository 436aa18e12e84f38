"""The observer's ``/metrics``: a real observer on a real headless Chromium with the sandbox's
reference desktop (the official libraries), scraped over HTTP and parsed with prometheus-client's
own parser; the sandbox closes the desktop's streaming socket and the metrics see it go down,
come back and how long it took, as the observer's own figures say."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.agent.runtime import read_json
from chaosgenesys.browser import actions, runs
from chaosgenesys.controls.promql import (
    DEFAULT_API_P99_QUERY,
    DEFAULT_WEBSOCKET_ERROR_RATE_QUERY,
)
from tests.browser_observer.conftest import processes_with, wait_for
from tests.conftest import AGENT_1, QUEUE, make_seed

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "agent1@example.com"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``url``: (name, labels) -> value, by prometheus-client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = requests.get(url, timeout=5)
    assert answer.status_code == 200, answer.text[:300]
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    wanted = frozenset(labels.items())
    found = [v for (n, have), v in samples.items() if n == name and wanted <= have]
    return sum(found) if found else None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from chaosgenesys.sandbox import Sandbox

    seed = make_seed(
        users=[{"id": AGENT_1, "name": "Test Agent 1", "email": EMAIL, "presence": "On Queue"}],
        queues=[{"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1]}],
    )
    with Sandbox(seed=seed) as sb:
        yield sb


def test_the_observer_serves_the_agents_metrics_and_sees_a_socket_closed(sandbox: Any) -> None:
    port = _free_port()
    started = actions.start_observer(open_url=f"{sandbox.url}/desktop/?user={EMAIL}",
                                     metrics_port=port)
    url = f"http://127.0.0.1:{port}/metrics"
    assert started["metrics_url"] == url
    record = runs.pick_observer(started["id"])
    assert record["metrics_port"] == port
    assert (read_json(Path(started["dir"]) / "status.json") or {})["metrics"] == {
        "port": port, "url": url}
    me = {"observer": started["id"], "desktop": "browser"}
    wait_for(lambda: runs.summary_of(record)["ui"].get("connection") == "connected", 30)
    samples = wait_for(lambda: (s := _scrape(url)) and _value(
        s, "chaosgenesys_websocket_connected", **me) == 1 and s, 10)
    assert _value(samples, "chaosgenesys_websocket_disconnects_total", **me) == 0
    assert _value(samples, "chaosgenesys_websocket_errors_total", **me) == 0
    assert _value(samples, "chaosgenesys_reconnect_latency_seconds_count", **me) is None
    # the page's REST calls, by path template, labelled as the browser's
    calls = _value(samples, "chaosgenesys_api_request_duration_seconds_count",
                   desktop="browser")
    assert calls is not None and calls >= 2, samples
    paths = {dict(labels).get("path") for name, labels in samples
             if name == "chaosgenesys_api_request_duration_seconds_count"}
    assert "/api/v2/users/{id}/presences/purecloud" in paths or "/api/v2/users/me" in paths, paths
    assert not any("?" in str(p) or AGENT_1 in str(p) for p in paths), paths
    # the kill switch's default queries name these series, over every label but le
    for name in ("chaosgenesys_api_request_duration_seconds_bucket",
                 "chaosgenesys_websocket_connected"):
        assert name in DEFAULT_API_P99_QUERY + DEFAULT_WEBSOCKET_ERROR_RATE_QUERY
        assert any(n == name and ("desktop", "browser") in labels for n, labels in samples)

    closed = requests.post(f"{sandbox.url}/sandbox/v1/notifications/close",
                           json={"code": 1011, "user_ids": [AGENT_1]}, timeout=10).json()
    assert closed["streaming"] == 1, closed
    seen_down = False
    deadline = time.monotonic() + 30
    while True:  # down (the library waits 2 s before its first try), then back
        samples = _scrape(url)
        connected = _value(samples, "chaosgenesys_websocket_connected", **me)
        seen_down = seen_down or connected == 0
        if seen_down and connected == 1:
            break
        assert time.monotonic() < deadline, samples
        time.sleep(0.1)
    assert _value(samples, "chaosgenesys_websocket_disconnects_total", **me) == 1
    errors = _value(samples, "chaosgenesys_websocket_errors_total", **me)
    assert errors is not None and errors >= 1
    assert _value(samples, "chaosgenesys_reconnect_latency_seconds_count", **me) == 1
    latency = _value(samples, "chaosgenesys_reconnect_latency_seconds_sum", **me)
    figures = runs.summary_of(record)
    assert figures["reconnects"] == 1, figures
    assert latency is not None and 1.5 < latency < 15, latency
    assert abs(latency * 1000 - figures["reconnect_max_ms"]) < 5, (latency, figures)

    # a port taken (by this observer): named, nothing left running, no browser launched
    browsers = set(processes_with("chaosgenesys-observer-"))
    with pytest.raises(ActivityFailed, match=f"metrics_port {port}: cannot serve /metrics"):
        actions.start_observer(open_url=f"{sandbox.url}/desktop/?user={EMAIL}",
                               metrics_port=port)
    assert set(processes_with("chaosgenesys-observer-")) == browsers
    actions.stop_observer(started["id"])
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


@pytest.mark.parametrize("value", [-1, 65536, "9464", 1.5, True])
def test_a_bad_metrics_port_fails_before_anything_starts(value: Any) -> None:
    with pytest.raises(ActivityFailed, match="metrics_port"):
        actions.start_observer(open_url="http://127.0.0.1:1/", metrics_port=value)
    assert runs.list_observers() == []


def test_the_activity_modules_import_no_prometheus_client() -> None:
    code = ("import sys, chaosgenesys.browser.probes, chaosgenesys.browser.actions, "
            "chaosgenesys.controls.browser; "
            "print(sorted(m for m in sys.modules if m.startswith('prometheus_client')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
