"""The observer's figures, from an event log written by the agents' EventLog (the real writer)."""

from __future__ import annotations

from pathlib import Path

from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.browser.summary import read_events, summarize_events


def test_reconnect_latency_rest_p99_and_console(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    url = "ws://127.0.0.1:1/v1/notifications"
    log.write("page", "ws_created", ws="1", url=url)
    log.write("page", "ws_frame", ws="1", dir="in")
    log.write("page", "ws_closed", ws="1", code=1011)
    log.write("page", "ws_created", ws="2", url=url)
    log.write("page", "ws_frame", ws="2", dir="in")
    log.write("page", "ws_frame_error", ws="2")
    for ms in (10, 20, 900):
        log.write("page", "rest", method="GET", path="/api/v2/x", status=200, latency_ms=ms)
    log.write("page", "console", level="error", text="boom")
    log.write("page", "console", level="warning", text="hm")
    log.close()
    events = read_events(path)
    summary = summarize_events(events)
    ts = {(e["event"], e.get("ws")): e["ts"] for e in events}
    expected = round((ts[("ws_frame", "2")] - ts[("ws_closed", "1")]) * 1000, 1)
    assert summary["reconnect_ms"] == {url: {"count": 1, "max": expected, "p50": expected}}
    assert summary["websocket_errors"] == 1
    assert summary["api_calls"] == 3 and summary["api_p99_ms"] == 900.0
    assert summary["console_errors"] == 1 and summary["console_warnings"] == 1


def test_no_reconnect_without_a_close(tmp_path: Path) -> None:
    events = [
        {"ts": 1.0, "event": "ws_created", "ws": "1", "url": "ws://a"},
        {"ts": 1.1, "event": "ws_frame", "ws": "1", "dir": "in"},
        {"ts": 2.0, "event": "ws_created", "ws": "2", "url": "ws://a"},
        {"ts": 2.1, "event": "ws_frame", "ws": "2", "dir": "in"},
    ]
    assert summarize_events(events)["reconnect_ms"] == {}
    assert read_events(tmp_path / "missing.jsonl") == []


def test_failed_reopen_keeps_the_outage_start() -> None:
    events = [
        {"ts": 1.0, "event": "ws_created", "ws": "1", "url": "ws://a"},
        {"ts": 1.1, "event": "ws_frame", "ws": "1", "dir": "in"},
        {"ts": 2.0, "event": "ws_closed", "ws": "1", "code": 1011},
        {"ts": 2.5, "event": "ws_created", "ws": "2", "url": "ws://a"},
        {"ts": 2.6, "event": "ws_closed", "ws": "2", "code": 1006},
        {"ts": 4.0, "event": "ws_created", "ws": "3", "url": "ws://a"},
        {"ts": 5.0, "event": "ws_frame", "ws": "3", "dir": "in"},
    ]
    summary = summarize_events(events)
    assert summary["reconnect_ms"] == {"ws://a": {"count": 1, "max": 3000.0, "p50": 3000.0}}
    assert summary["disconnected_s"] == 3.0
