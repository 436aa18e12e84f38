"""Metrics recorder: bounded, thread-safe, percentiles, status counts, rate-limit headers."""

from __future__ import annotations

import json
import threading
import time

from chaosgenesys.platform import metrics
from chaosgenesys.platform.metrics import MetricsRecorder, path_template, percentile
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse

UUID = "0b6b3c5e-0000-4000-8000-000000000001"


def test_path_template() -> None:
    assert path_template(f"/api/v2/users/{UUID}/presences/purecloud?x=1") == (
        "/api/v2/users/{id}/presences/purecloud"
    )
    assert path_template("/api/v2/routing/queues/42/members") == (
        "/api/v2/routing/queues/{id}/members"
    )
    assert path_template("/oauth/token") == "/oauth/token"


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.99) == 7.0


def test_snapshot_counts_statuses_latency_and_rate_limits() -> None:
    rec = MetricsRecorder()
    for i in range(98):
        rec.record("get", f"/api/v2/users/{UUID}", 200, 10.0 + i % 3)
    rec.record(
        "GET",
        "/api/v2/users/x",
        429,
        2500.0,
        retries=2,
        headers={
            "inin-ratelimit-allowed": "300",
            "inin-ratelimit-count": "300",
            "inin-ratelimit-reset": "42",
            "other": "x",
        },
    )
    rec.record("GET", "/api/v2/users/y", None, 5000.0)
    snap = rec.snapshot()
    assert snap["count"] == 100
    assert snap["status_counts"] == {"200": 98, "429": 1, "error": 1}
    assert snap["errors"] == 2
    assert snap["retries"] == 2
    assert snap["p50_ms"] in (10.0, 11.0, 12.0)
    assert snap["p99_ms"] == 2500.0
    assert snap["max_ms"] == 5000.0
    assert snap["rate_limit"] == {
        "inin-ratelimit-allowed": "300",
        "inin-ratelimit-count": "300",
        "inin-ratelimit-reset": "42",
    }
    json.dumps(snap)
    assert rec.records()[0].path == "/api/v2/users/{id}"
    assert rec.records()[0].method == "GET"
    rec.reset()
    assert rec.snapshot()["count"] == 0 and rec.snapshot()["rate_limit"] == {}


def test_window_and_bound() -> None:
    rec = MetricsRecorder(max_records=50)
    rec.record("GET", "/old", 200, 1.0, timestamp=time.time() - 120)
    for _ in range(10):
        rec.record("GET", "/new", 200, 1.0)
    assert rec.snapshot(window_seconds=60)["count"] == 10
    for _ in range(100):
        rec.record("GET", "/more", 200, 1.0)
    snap = rec.snapshot()
    assert snap["count"] == 50 and snap["total_recorded"] == 111


def test_thread_safety() -> None:
    rec = MetricsRecorder()

    def work() -> None:
        for i in range(1000):
            rec.record("GET", "/x", 200, 1.0)
            if i % 100 == 0:
                rec.snapshot()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rec.snapshot()["total_recorded"] == 8000


def test_module_level_recorder() -> None:
    metrics.record("GET", "/a", 200, 3.0)
    assert metrics.snapshot()["count"] == 1
    assert metrics.records()[0]["path"] == "/a"
    metrics.reset()
    assert metrics.snapshot()["count"] == 0
