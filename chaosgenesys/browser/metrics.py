"""A browser observer's figures for Prometheus: ``http://127.0.0.1:<metrics_port>/metrics``.

Served by the official ``prometheus-client`` from a thread of the observer process, when
:func:`chaosgenesys.browser.actions.start_observer` is given ``metrics_port``. Only the
observer process imports this module, and only then: activity modules never import
prometheus-client. docs/observability.md lists the metrics.

The metrics are the synthetic agents' (:mod:`chaosgenesys.agent.metrics`) where they mean the
same, with the same names, buckets and labels, plus ``desktop="browser"`` on every series and
``observer`` (the observer's id) where the agents have ``user``: the kill switch's default
PromQL (``chaosgenesys.controls.promql``) aggregates over every label but ``le``, so it covers
the browser and the agents alike. They are computed from the events the observer writes
(:class:`~chaosgenesys.agent.eventlog.EventLog`'s listener) as
:func:`chaosgenesys.browser.summary.summarize_events` counts them: a reconnect runs from a
socket's close to the first frame of the next socket on its URL. No label holds a token, a
query string or an id inside a path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from chaosgenesys.agent.metrics import (
    API_BUCKETS,
    RECONNECT_BUCKETS,
    MetricsEndpoint,
    status_class,
)
from chaosgenesys.platform.metrics import path_template

__all__ = ["DESKTOP", "ObserverMetrics"]

#: The ``desktop`` label of every series an observer exposes.
DESKTOP = "browser"


class ObserverMetrics(MetricsEndpoint):
    """The metrics of one observer process and the HTTP server exposing them."""

    def __init__(self, port: int, observer_id: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.port = port
        self.observer = observer_id
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.api = Histogram(
            "chaosgenesys_api_request_duration_seconds",
            "REST and token calls of the observed browser page, from the request to its "
            "last byte, as the browser timed them",
            ["method", "path", "status_class", "desktop"],
            buckets=API_BUCKETS,
            registry=registry,
        )
        self.connected = Gauge(
            "chaosgenesys_websocket_connected",
            "1 while the page's WebSocket is up, 0 from a socket's close to the first frame "
            "of the socket that answers it (present once a socket has had a frame)",
            ["observer", "desktop"],
            registry=registry,
        )
        self.disconnects = Counter(
            "chaosgenesys_websocket_disconnects",
            "WebSockets of the page closed (by either side)",
            ["observer", "desktop"],
            registry=registry,
        )
        self.errors = Counter(
            "chaosgenesys_websocket_errors",
            "WebSocket errors: sockets closed plus frame errors (failed handshakes included)",
            ["observer", "desktop"],
            registry=registry,
        )
        self.reconnect = Histogram(
            "chaosgenesys_reconnect_latency_seconds",
            "From a socket's close to the first frame of the next socket on its URL",
            ["observer", "desktop"],
            buckets=RECONNECT_BUCKETS,
            registry=registry,
        )
        # counters at 0 from the start, so increase() sees the first loss
        self.disconnects.labels(observer_id, DESKTOP)
        self.errors.labels(observer_id, DESKTOP)
        self._url_of: dict[str, str] = {}
        self._closed_at: dict[str, float] = {}  # url -> close awaiting a new socket
        self._pending: dict[str, float] = {}  # new ws id -> close time it answers
        self._up = False
        self._lock = threading.Lock()
        self._server: Any = None

    def event(self, label: str, event: str, fields: dict[str, Any]) -> None:
        """An event of the observer's event log (``EventLog.listener``)."""
        with self._lock:
            self._event(event, fields)

    def _event(self, event: str, fields: dict[str, Any]) -> None:
        ts, ws = float(fields.get("ts") or time.time()), str(fields.get("ws", ""))
        if event == "ws_created":
            url = str(fields.get("url", ""))
            self._url_of[ws] = url
            if url in self._closed_at:
                self._pending[ws] = self._closed_at.pop(url)
            elif url and "" in self._closed_at:  # a socket opened before the observer
                self._pending[ws] = self._closed_at.pop("")
        elif event == "ws_frame":
            self._up = True
            if ws in self._pending:
                self.reconnect.labels(self.observer, DESKTOP).observe(
                    max(0.0, ts - self._pending.pop(ws)))
        elif event == "ws_closed" and ws in self._url_of:
            self._closed_at[self._url_of[ws]] = self._pending.pop(ws, ts)
            self.disconnects.labels(self.observer, DESKTOP).inc()
            self.errors.labels(self.observer, DESKTOP).inc()
        elif event == "ws_frame_error":
            self.errors.labels(self.observer, DESKTOP).inc()
        elif event == "rest":
            latency = fields.get("latency_ms")
            if isinstance(latency, int | float) and not isinstance(latency, bool):
                status = fields.get("status")
                code = status if isinstance(status, int) and status > 0 else None
                self.api.labels(str(fields.get("method") or ""),
                                path_template(str(fields.get("path") or "/")),
                                status_class(code), DESKTOP).observe(max(0.0, latency) / 1000)
            return
        else:
            return
        if self._up:
            down = bool(self._closed_at or self._pending)
            self.connected.labels(self.observer, DESKTOP).set(0 if down else 1)
