"""The synthetic agents' figures for Prometheus: ``http://127.0.0.1:<metrics_port>/metrics``.

One endpoint per agent process (every agent of the process, a ``user`` label each), served by
the official ``prometheus-client`` from a thread of the agent process. Only the agent process
imports this module, and only when the ``metrics_port`` option is set: prometheus-client is
imported here, lazily, never by activity modules. docs/observability.md lists the metrics.

Names follow the Prometheus conventions (base units, ``_total`` counters). Labels hold the
user id, the HTTP method, the path *template* (ids replaced by ``{id}``, query strings dropped,
as ``chaosgenesys.platform.metrics.path_template`` does) and the status class: never a token,
a secret or a query string.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from chaosgenesys.platform.metrics import CallRecord, MetricsRecorder

__all__ = [
    "API_BUCKETS",
    "HOST",
    "RECONNECT_BUCKETS",
    "AgentMetrics",
    "MetricsEndpoint",
    "ObservedRecorder",
    "serve",
    "status_class",
    "stop_serving",
]


def serve(registry: Any, port: int) -> Any:
    """Serve ``registry`` on ``http://127.0.0.1:<port>/metrics`` from a daemon thread (the
    agents' and the browser observer's endpoints); the server. ``OSError`` naming
    ``metrics_port`` when the port cannot be had."""
    from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

    try:
        server = make_server(HOST, port, make_wsgi_app(registry),
                             server_class=ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as error:
        raise OSError(
            error.errno,
            f"metrics_port {port}: cannot serve /metrics on {HOST}:{port}: "
            f"{error.strerror or error}",
        ) from None
    threading.Thread(target=server.serve_forever, name="chaosgenesys-metrics",
                     daemon=True).start()
    return server


def stop_serving(server: Any) -> None:
    """Stop a server :func:`serve` started (``None``: nothing to stop)."""
    if server is not None:
        server.shutdown()
        server.server_close()

HOST = "127.0.0.1"
#: Seconds. 2.0 is a bound so that ``histogram_quantile`` never puts calls of 2 s or less above
#: the guide's 2,000 ms limit (it interpolates inside a bucket).
API_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 30.0, 60.0)
RECONNECT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: Events of the agents' event log that are failed WebSocket (re)connection attempts.
_FAILED_ATTEMPTS = ("reconnect_failed", "rotate_failed")


def status_class(status: int | None) -> str:
    """``2xx``, ``4xx``, ... or ``none`` for a call that got no answer."""
    return "none" if status is None else f"{status // 100}xx"


class ObservedRecorder(MetricsRecorder):
    """A :class:`MetricsRecorder` that also hands every recorded call to ``observe``."""

    def __init__(self, max_records: int, observe: Callable[[CallRecord], None]) -> None:
        super().__init__(max_records=max_records)
        self._observe = observe

    def record(self, method: str, path: str, status: int | None, latency_ms: float,
               **kwargs: Any) -> CallRecord:
        entry = super().record(method, path, status, latency_ms, **kwargs)
        self._observe(entry)
        return entry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line on stderr per scrape."""


class MetricsEndpoint:
    """A ``registry`` served on ``http://127.0.0.1:<port>/metrics`` (:func:`serve`): the
    agents' and the browser observer's metrics classes set both in their ``__init__``."""

    port: int
    registry: Any
    _server: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/metrics"

    def start(self) -> None:
        """Serve ``/metrics`` on 127.0.0.1; ``OSError`` naming ``metrics_port`` if it cannot."""
        self._server = serve(self.registry, self.port)

    def stop(self) -> None:
        stop_serving(self._server)
        self._server = None


class AgentMetrics(MetricsEndpoint):
    """The metrics of one agent process and the HTTP server exposing them."""

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.port = port
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.api = Histogram(
            "chaosgenesys_api_request_duration_seconds",
            "REST and token calls of the synthetic desktops as the desktop lives them "
            "(token and retry waits included)",
            ["method", "path", "status_class"],
            buckets=API_BUCKETS,
            registry=registry,
        )
        self.connected = Gauge(
            "chaosgenesys_websocket_connected",
            "1 while the desktop's notification WebSocket is connected, 0 while not (present "
            "once it has connected once)",
            ["user"],
            registry=registry,
        )
        self.disconnects = Counter(
            "chaosgenesys_websocket_disconnects",
            "Notification WebSockets lost (closed by the server, dead, zombie, ...)",
            ["user"],
            registry=registry,
        )
        self.errors = Counter(
            "chaosgenesys_websocket_errors",
            "WebSocket errors: sockets lost plus failed (re)connection attempts",
            ["user"],
            registry=registry,
        )
        self.reconnect = Histogram(
            "chaosgenesys_reconnect_latency_seconds",
            "From the loss of the notification WebSocket to the new one subscribed",
            ["user"],
            buckets=RECONNECT_BUCKETS,
            registry=registry,
        )
        self.not_on_queue = Gauge(
            "chaosgenesys_not_on_queue_seconds",
            "How long the desktop has been off queue in its own view (0: On Queue)",
            ["user"],
            registry=registry,
        )
        self._server: Any = None

    def add_users(self, users: list[str]) -> None:
        """Counters at 0 from the start, so ``increase()`` sees the first loss."""
        for user in users:
            self.disconnects.labels(user)
            self.errors.labels(user)
            self.not_on_queue.labels(user).set(0)

    def api_call(self, call: CallRecord) -> None:
        self.api.labels(call.method, call.path, status_class(call.status)).observe(
            call.latency_ms / 1000
        )

    def event(self, user: str, event: str, fields: dict[str, Any]) -> None:
        """An event of the agents' event log (``EventLog.listener``)."""
        if event == "disconnect":
            self.connected.labels(user).set(0)
            self.disconnects.labels(user).inc()
            self.errors.labels(user).inc()
        elif event in _FAILED_ATTEMPTS:
            self.errors.labels(user).inc()
        elif event == "reconnect":
            self.connected.labels(user).set(1)
            self.reconnect.labels(user).observe(float(fields.get("latency_ms") or 0) / 1000)
            attempts = int(fields.get("attempts") or 1)
            if fields.get("kind") == "naive" and attempts > 1:  # its retries log nothing
                self.errors.labels(user).inc(attempts - 1)

    def update(self, summaries: dict[str, dict[str, Any]]) -> None:
        """The gauges, from the agents' summaries (every status-file write)."""
        for user, summary in summaries.items():
            if summary.get("ready"):
                self.connected.labels(user).set(1 if summary.get("connected") else 0)
            self.not_on_queue.labels(user).set(
                float(summary.get("off_queue_current_seconds") or 0.0)
            )
