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


def test_zombie_seconds_count_silence_past_the_ping_timeout() -> None:
    events = [
        {"ts": 0.0, "event": "ws_created", "ws": "1", "url": "ws://a"},
        {"ts": 1.0, "event": "ws_frame", "ws": "1", "dir": "in"},
        {"ts": 50.0, "event": "ws_frame", "ws": "1", "dir": "out"},  # ours: not a sign of life
        {"ts": 61.0, "event": "ws_frame", "ws": "1", "dir": "in"},  # 60 s silent: 25 s zombie
        {"ts": 100.0, "event": "ws_closed", "ws": "1"},  # 39 s silent: 4 s zombie
        {"ts": 101.0, "event": "ws_created", "ws": "2", "url": "ws://a"},
        {"ts": 101.5, "event": "ws_frame", "ws": "2", "dir": "in"},
    ]
    assert summarize_events(events)["zombie_s"] == 29.0
    assert summarize_events(events, silence_s=10)["zombie_s"] == 50.0 + 29.0
    # a socket still open counts up to ``now``
    assert summarize_events(events, now=200.0)["zombie_s"] == 29.0 + 200.0 - 101.5 - 35.0


def test_overall_reconnects_unknown_sockets_api_errors_and_ui() -> None:
    events = [
        {"ts": 1.0, "event": "ws_created", "ws": "0", "url": ""},  # open before the observer
        {"ts": 2.0, "event": "ws_closed", "ws": "0"},
        {"ts": 2.1, "event": "ws_created", "ws": "1", "url": "ws://a"},
        {"ts": 2.3, "event": "ws_frame", "ws": "1", "dir": "in"},
        {"ts": 3.0, "event": "ws_closed", "ws": "1"},
        {"ts": 3.1, "event": "ws_created", "ws": "2", "url": "ws://a"},
        {"ts": 3.2, "event": "ws_frame", "ws": "2", "dir": "in"},
        {"ts": 4.0, "event": "rest", "status": 200, "latency_ms": 5},
        {"ts": 4.1, "event": "rest", "status": 503, "latency_ms": 7},
        {"ts": 4.2, "event": "rest", "status": 0, "latency_ms": 9, "error": "net::ERR_FAILED"},
        {"ts": 4.3, "event": "ui", "name": "presence", "value": "Available"},
        {"ts": 4.4, "event": "ui", "name": "presence", "value": "Busy"},
    ]
    summary = summarize_events(events)
    assert summary["reconnects"] == 2
    assert summary["reconnect_ms"] == {"ws://a": {"count": 2, "max": 300.0, "p50": 200.0}}
    assert (summary["reconnect_max_ms"], summary["reconnect_p50_ms"]) == (300.0, 200.0)
    assert summary["websockets_opened"] == 3 and summary["websockets_closed"] == 2
    assert summary["api_calls"] == 3 and summary["api_errors"] == 2
    assert summary["ui"] == {"presence": "Busy"}


def test_redaction_of_console_text() -> None:
    from chaosgenesys.browser.observer import redact

    text = redact(
        "Bearer eyJhbGciOi.eyJzdWIiOi.c2ln at https://h/oauth/token?code=XYZ#frag "
        '{"access_token": "abc", "n": 1} token: zzz refresh_token=rrr '
        "Unexpected response code: 404"
    )
    for secret in ("eyJ", "XYZ", "frag", "abc", "zzz", "rrr"):
        assert secret not in text
    assert "Unexpected response code: 404" in text and '"n": 1' in text
    assert len(redact("x" * 2000)) == 500


def test_an_outage_still_under_way_counts_up_to_now() -> None:
    events = [
        {"ts": 100.0, "event": "ws_created", "ws": "a", "url": "wss://s/stream"},
        {"ts": 100.1, "event": "ws_frame", "ws": "a", "dir": "in"},
        {"ts": 101.0, "event": "ws_closed", "ws": "a"},
        {"ts": 103.0, "event": "ws_created", "ws": "b", "url": "wss://s/stream"},
        {"ts": 103.1, "event": "ws_frame_error", "ws": "b"},
        {"ts": 103.2, "event": "ws_closed", "ws": "b"},
    ]
    summary = summarize_events(events, now=111.0)
    assert summary["disconnected_now"] is True
    assert summary["disconnected_s"] == 10.0  # from the first close (101) to now
    assert summary["reconnects"] == 0
    back = summarize_events(
        [*events, {"ts": 105.0, "event": "ws_created", "ws": "c", "url": "wss://s/stream"},
         {"ts": 105.5, "event": "ws_frame", "ws": "c", "dir": "in"}],
        now=111.0,
    )
    assert back["disconnected_now"] is False and back["disconnected_s"] == 4.5
