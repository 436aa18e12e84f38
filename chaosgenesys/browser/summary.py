"""The figures of a browser observer's event log. Pure Python: no Playwright.

Events read (one JSON object per line, the agents' :class:`~chaosgenesys.agent.eventlog.EventLog`
format): ``ws_created`` (``ws``, ``url``), ``ws_frame`` (``ws``, ``dir``), ``ws_frame_error``
(``ws``), ``ws_closed`` (``ws``, ``code``), ``rest`` (``latency_ms``, ``status``), ``console``
(``level``), ``ui`` (``name``, ``value``), ``token`` (``expires_at``, ``request_ms``). A
reconnect is a close of a WebSocket URL followed by the next WebSocket created on the same URL
(a socket opened before the observer attached has the URL ``""``: the next socket created after
its close answers it); its latency runs from the close to that socket's first frame. Zombie time
is the time a socket stayed open past ``silence_s`` without a frame in. :func:`socket_outages`
gives the same outages over time (each from its close to the reconnect's first frame), for the
report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["OUTAGES_KEPT", "SILENCE_S", "read_events", "socket_outages", "summarize_events"]


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


#: The client's ping timeout: a socket silent longer than this is a zombie (seconds).
SILENCE_S = 35.0


def summarize_events(
    events: list[dict[str, Any]], silence_s: float = SILENCE_S, now: float | None = None
) -> dict[str, Any]:
    """Reconnect latency overall and per WebSocket URL (max/p50 ms), seconds disconnected,
    seconds disconnected (outages still under way counted up to the end; ``disconnected_now``),
    zombie seconds (a socket open with no frame in for longer than ``silence_s``, counted
    beyond it, up to its close or ``now``, default the last event), WebSocket errors, REST p99
    latency, errors and 401s (a token the platform no longer takes), console errors/warnings,
    the UI's last values, and the access tokens the page obtained (how many, when the last one
    expires, epoch seconds, and how long its request took, ms)."""
    url_of: dict[str, str] = {}
    closed_at: dict[str, float] = {}  # url -> time of the close awaiting a reconnect
    pending: dict[str, float] = {}  # new ws id -> close time it answers
    latencies: dict[str, list[float]] = {}
    quiet_since: dict[str, float] = {}  # open ws id -> last frame in (or its open)
    zombie = 0.0
    disconnected = 0.0
    ws_errors = 0
    ws_created = 0
    ws_closed = 0
    rest: list[float] = []
    api_errors = 0
    api_unauthorized = 0
    console = {"error": 0, "warning": 0}
    ui: dict[str, Any] = {}
    tokens = 0
    token_expires_at: float | None = None
    token_request_ms: float | None = None
    ordered = sorted(events, key=lambda e: float(e.get("ts", 0.0)))
    for ev in ordered:
        kind, ts, ws = ev.get("event"), float(ev.get("ts", 0.0)), str(ev.get("ws", ""))
        if kind == "ws_created":
            ws_created += 1
            url = str(ev.get("url", ""))
            url_of[ws] = url
            quiet_since[ws] = ts
            if url in closed_at:
                pending[ws] = closed_at.pop(url)
            elif url and "" in closed_at:  # the close of a socket opened before the observer
                pending[ws] = closed_at.pop("")
        elif kind == "ws_frame":
            if ev.get("dir") == "in" and ws in quiet_since:
                zombie += max(0.0, ts - quiet_since[ws] - silence_s)
                quiet_since[ws] = ts
            if ws in pending:
                start = pending.pop(ws)
                latencies.setdefault(url_of[ws], []).append(round((ts - start) * 1000, 1))
                disconnected += ts - start
        elif kind == "ws_closed" and ws in url_of:
            if ws in quiet_since:
                zombie += max(0.0, ts - quiet_since.pop(ws) - silence_s)
            # A socket that closes before its first frame did not end the outage: keep its start.
            closed_at[url_of[ws]] = pending.pop(ws, ts)
            ws_closed += 1
        elif kind == "ws_frame_error":
            ws_errors += 1
        elif kind == "rest" and isinstance(ev.get("latency_ms"), int | float):
            rest.append(float(ev["latency_ms"]))
            status = ev.get("status")
            if not isinstance(status, int) or status == 0 or status >= 500:
                api_errors += 1
            elif status == 401:
                api_unauthorized += 1
        elif kind == "console" and ev.get("level") in console:
            console[str(ev["level"])] += 1
        elif kind == "ui" and isinstance(ev.get("name"), str):
            ui[str(ev["name"])] = ev.get("value")
        elif kind == "token" and isinstance(ev.get("expires_at"), int | float):
            tokens += 1
            token_expires_at = float(ev["expires_at"])
            took = ev.get("request_ms")
            token_request_ms = float(took) if isinstance(took, int | float) else None
    end = now if now is not None else (float(ordered[-1].get("ts", 0.0)) if ordered else 0.0)
    for since in quiet_since.values():
        zombie += max(0.0, end - since - silence_s)
    # An outage still under way counts up to the end too: a desktop that never came back was
    # disconnected all that time, not zero seconds.
    ongoing = set(closed_at.values()) | set(pending.values())
    disconnected += sum(max(0.0, end - start) for start in ongoing)
    every = [value for values in latencies.values() for value in values]
    return {
        "reconnects": len(every),
        "reconnect_max_ms": max(every) if every else None,
        "reconnect_p50_ms": _percentile(every, 50),
        "reconnect_ms": {
            url: {"count": len(v), "max": max(v), "p50": _percentile(v, 50)}
            for url, v in latencies.items()
        },
        "disconnected_s": round(disconnected, 3),
        "disconnected_now": bool(ongoing),
        "zombie_s": round(zombie, 3),
        "websockets_opened": ws_created,
        "websockets_closed": ws_closed,
        "websocket_errors": ws_errors,
        "websocket_error_rate": round(ws_errors / ws_created, 4) if ws_created else None,
        "api_calls": len(rest),
        "api_errors": api_errors,
        "api_p99_ms": _percentile(rest, 99),
        "api_unauthorized": api_unauthorized,
        "console_errors": console["error"],
        "console_warnings": console["warning"],
        "ui": ui,
        "tokens_obtained": tokens,
        "token_expires_at": token_expires_at,
        "last_token_request_ms": token_request_ms,
    }


#: At most this many outages are kept by :func:`socket_outages` (the latest), as a synthetic
#: desktop keeps its latest reconnects (``chaosgenesys.agent.summary.PATH_RECORDS_KEPT``).
OUTAGES_KEPT = 200


def socket_outages(events: list[dict[str, Any]], kept: int = OUTAGES_KEPT) -> dict[str, Any]:
    """The page's WebSocket over time, as :func:`summarize_events` counts it: ``{"up_since":
    the first frame of any socket (epoch seconds, None without one), "outages": [[closed_at,
    reopened_at or None], ...] (the latest ``kept``, oldest first; None: still down at the
    end), "outages_dropped": how many older ones were left out}``. An outage runs from a
    socket's close to the first frame of the socket that answers it (its reconnect), so the
    ended outages' lengths are the reconnect latencies and their sum, with the ongoing ones
    counted to the end, is ``disconnected_s``."""
    url_of: dict[str, str] = {}
    closed_at: dict[str, float] = {}  # url -> close awaiting a new socket
    pending: dict[str, float] = {}  # new ws id -> close time it answers
    outages: list[list[float | None]] = []
    up_since: float | None = None
    for ev in sorted(events, key=lambda e: float(e.get("ts", 0.0))):
        kind, ts, ws = ev.get("event"), float(ev.get("ts", 0.0)), str(ev.get("ws", ""))
        if kind == "ws_created":
            url = str(ev.get("url", ""))
            url_of[ws] = url
            if url in closed_at:
                pending[ws] = closed_at.pop(url)
            elif url and "" in closed_at:
                pending[ws] = closed_at.pop("")
        elif kind == "ws_frame":
            if up_since is None:
                up_since = ts
            if ws in pending:
                outages.append([pending.pop(ws), ts])
        elif kind == "ws_closed" and ws in url_of:
            closed_at[url_of[ws]] = pending.pop(ws, ts)
    outages.extend([start, None] for start in set(closed_at.values()) | set(pending.values()))
    outages.sort(key=lambda outage: float(outage[0] or 0.0))
    dropped = max(0, len(outages) - max(0, kept))
    return {
        "up_since": up_since,
        "outages": [[round(float(a or 0.0), 3), None if b is None else round(b, 3)]
                    for a, b in outages[dropped:]],
        "outages_dropped": dropped,
    }
