"""The telemetry control sends a real run's figures and windows over OTLP/HTTP to a receiver
that decodes them with OpenTelemetry's own protobuf classes (``opentelemetry-proto``), and a
receiver that does not answer never costs the run."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import AGENT_1
from tests.controls.runner import chaos_run

TITLE = "telemetry subject"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on 127.0.0.1: keeps what it decoded."""

    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/metrics":
            self.server.metrics.append(ExportMetricsServiceRequest.FromString(body))
            answer = ExportMetricsServiceResponse().SerializeToString()
        elif self.path == "/v1/traces":
            self.server.traces.append(ExportTraceServiceRequest.FromString(body))
            answer = ExportTraceServiceResponse().SerializeToString()
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _experiment(endpoint: str, pause: float = 4, **telemetry: Any) -> dict[str, Any]:
    def action(name: str, func: str, **arguments: Any) -> dict[str, Any]:
        return {"type": "action", "name": name, "provider": {
            "type": "python", "module": "chaosgenesys.sandbox.actions", "func": func,
            "arguments": arguments}}

    close = action("platform-closes-the-socket", "close_notification_sockets", code=1001,
                   user_ids=[AGENT_1], sessions_only=True)
    close["pauses"] = {"after": pause}
    return {
        "title": TITLE,
        "description": "a socket closed while new ones are refused for 1 s",
        "controls": [
            {"name": "chaosgenesys-verdict",
             "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}},
            {"name": "genesys-sandbox", "provider": {
                "type": "python", "module": "chaosgenesys.controls.sandbox",
                "arguments": {"seed": "examples/seed.yaml", "heartbeat_interval": 1.0,
                              "agents": [AGENT_1],
                              "agent_options": {"ping_interval": 1, "heartbeat_interval": 1,
                                                "sync_interval": 1}}}},
            {"name": "chaosgenesys-telemetry", "provider": {
                "type": "python", "module": "chaosgenesys.controls.telemetry",
                "arguments": {"endpoint": endpoint, **telemetry}}},
        ],
        "method": [
            action("channels-refused-for-1s", "inject_api_fault", path_pattern="^/channels/",
                   status=503, duration=1),
            close,
        ],
    }


def _attributes(items: Any) -> dict[str, Any]:
    found = {}
    for item in items:
        value = item.value
        found[item.key] = getattr(value, value.WhichOneof("value"))
    return found


def test_a_real_run_reaches_the_receiver(receiver: Receiver, tmp_path: Path) -> None:
    run = chaos_run(_experiment(receiver.url, headers={"x-api-key": "k"}), tmp_path,
                    tmp_path / "runtime")
    assert run.returncode == 0, run.log[-3000:]
    sent = run.extension("chaosgenesys-telemetry")
    assert sent["error"] == "" and sent["endpoint"] == receiver.url, sent
    assert receiver.metrics and receiver.traces

    metrics = {}
    for request in receiver.metrics:
        for resource in request.resource_metrics:
            resource_attributes = _attributes(resource.resource.attributes)
            assert resource_attributes["service.name"] == "chaosgenesys"
            assert resource_attributes["chaostoolkit.experiment.title"] == TITLE
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    metrics[metric.name] = metric
    reconnect = metrics["chaosgenesys.desktop.reconnect_latency"].histogram.data_points
    [point] = [p for p in reconnect if _attributes(p.attributes)["user_id"] == AGENT_1]
    # the desktop's first try, 2 s after the close, met the socket back: a real reconnect
    assert point.count == 1 and 1500 <= point.sum <= 8000, point
    assert _attributes(point.attributes)["chaosgenesys.run.id"] == _attributes(
        reconnect[0].attributes)["chaosgenesys.run.id"]
    outages = metrics["chaosgenesys.desktop.websocket_outages"].sum.data_points
    assert [p.as_int for p in outages] == [1]
    assert metrics["chaosgenesys.api.latency"].histogram.data_points

    spans = [span for request in receiver.traces for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    [fault] = [s for s in spans if s.name == "chaosgenesys.fault"
               and _attributes(s.attributes)["chaosgenesys.fault.name"]
               == "channels-refused-for-1s"]
    assert 0.9 <= (fault.end_time_unix_nano - fault.start_time_unix_nano) / 1e9 <= 1.5
    [outage] = [s for s in spans if s.name == "chaosgenesys.desktop.outage"]
    assert _attributes(outage.attributes)["user_id"] == AGENT_1
    assert "chaos-secret" not in run.log and "x-api-key" not in run.log


def test_a_receiver_that_does_not_answer_never_costs_the_run(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    # no need to wait for the desktop's reconnect here: the fault window is there to send
    run = chaos_run(_experiment(closed, pause=0, timeout=2), tmp_path, tmp_path / "runtime")
    assert run.returncode == 0, run.log[-3000:]
    assert run.journal["status"] == "completed"
    sent = run.extension("chaosgenesys-telemetry")
    assert "not accepted" in sent["error"], sent
    assert f"Telemetry: not sent to {closed}" in run.log


@pytest.mark.parametrize(
    ("arguments", "named"),
    [({"endpoint": "localhost:4318"}, "endpoint must be an http"),
     ({"headers": ["DD-API-KEY"]}, "headers must be a mapping"),
     ({"timeout": 0}, "timeout"), ({"port": 4318}, "unknown argument")],
)
def test_bad_arguments_are_named_at_validate(arguments: dict[str, Any], named: str) -> None:
    from chaoslib.exceptions import InvalidControl

    from chaosgenesys.controls.telemetry import validate_control

    with pytest.raises(InvalidControl, match=named):
        validate_control({"name": "t", "provider": {
            "type": "python", "module": "chaosgenesys.controls.telemetry",
            "arguments": arguments}})
