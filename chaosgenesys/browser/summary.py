"""The figures of a browser observer's event log. Pure Python: no Playwright.

Events read (one JSON object per line, the agents' :class:`~chaosgenesys.agent.eventlog.EventLog`
format): ``ws_created`` (``ws``, ``url``), ``ws_frame`` (``ws``, ``dir``), ``ws_frame_error``
(``ws``), ``ws_closed`` (``ws``, ``code``), ``rest`` (``latency_ms``), ``console``
(``level``). A reconnect is a close of a WebSocket URL followed by the next WebSocket created
on the same URL; its latency runs from the close to that socket's first frame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["read_events", "summarize_events"]


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a JSONL file (unreadable lines skipped; missing file: none)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    events: list[dict[str, Any]] = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_events(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Reconnect latency per WebSocket URL (max/p50 ms), seconds disconnected, WebSocket errors,
    REST p99 latency and console errors/warnings."""
    url_of: dict[str, str] = {}
    closed_at: dict[str, float] = {}  # url -> time of the close awaiting a reconnect
    pending: dict[str, float] = {}  # new ws id -> close time it answers
    latencies: dict[str, list[float]] = {}
    disconnected = 0.0
    ws_errors = 0
    rest: list[float] = []
    console = {"error": 0, "warning": 0}
    for ev in sorted(events, key=lambda e: float(e.get("ts", 0.0))):
        kind, ts, ws = ev.get("event"), float(ev.get("ts", 0.0)), str(ev.get("ws", ""))
        if kind == "ws_created":
            url = str(ev.get("url", ""))
            url_of[ws] = url
            if url in closed_at:
                pending[ws] = closed_at.pop(url)
        elif kind == "ws_frame" and ws in pending:
            start = pending.pop(ws)
            latencies.setdefault(url_of[ws], []).append(round((ts - start) * 1000, 1))
            disconnected += ts - start
        elif kind == "ws_closed" and ws in url_of:
            # A socket that closes before its first frame did not end the outage: keep its start.
            closed_at[url_of[ws]] = pending.pop(ws, ts)
        elif kind == "ws_frame_error":
            ws_errors += 1
        elif kind == "rest" and isinstance(ev.get("latency_ms"), int | float):
            rest.append(float(ev["latency_ms"]))
        elif kind == "console" and ev.get("level") in console:
            console[str(ev["level"])] += 1
    return {
        "reconnect_ms": {
            url: {"count": len(v), "max": max(v), "p50": _percentile(v, 50)}
            for url, v in latencies.items()
        },
        "disconnected_s": round(disconnected, 3),
        "websocket_errors": ws_errors,
        "api_calls": len(rest),
        "api_p99_ms": _percentile(rest, 99),
        "console_errors": console["error"],
        "console_warnings": console["warning"],
    }
