"""Chaos Toolkit control: the run's figures and fault windows to OpenTelemetry (OTLP/HTTP).

The road into Datadog, Splunk, Grafana or Honeycomb (``docs/observability.md`` shows the set-ups).
Declare it after the verdict control (it reads what the verdict control journals)::

    "controls": [
      {"name": "chaosgenesys-verdict",
       "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}},
      {"name": "chaosgenesys-telemetry",
       "provider": {"type": "python", "module": "chaosgenesys.controls.telemetry",
                    "arguments": {"endpoint": "http://127.0.0.1:4318"}}}
    ]

At the end of the run (``after_experiment_control``) it reads the run's timeline from the
journal (``chaosgenesys.results.timeline``) and sends, over OTLP/HTTP (protobuf) to
``<endpoint>/v1/metrics`` and ``<endpoint>/v1/traces``:

* **metrics**: ``chaosgenesys.desktop.reconnect_latency`` (histogram, ms, per ``user_id``),
  ``chaosgenesys.desktop.websocket_outages`` (counter, per ``user_id``),
  ``chaosgenesys.desktop.not_on_queue`` (counter of seconds, per ``user_id``),
  ``chaosgenesys.api.latency`` (histogram, ms, per ``source``: the slowest call of each second,
  as the verdict control journals them);
* **spans**: one per fault window (``chaosgenesys.fault``: its name, action and how it ended),
  per protocol phase (``chaosgenesys.protocol.<phase>``) and per desktop outage
  (``chaosgenesys.desktop.outage``), with their real start and end times;

every one carrying the experiment (``chaostoolkit.experiment.title``, the attribute
chaostoolkit-opentracing puts on its activity spans, so a backend joins both) and the run
(``chaosgenesys.run.id``, stable for a journal: a digest of the experiment's title and the run's
start; ``chaosgenesys.run.start``). It does not trace activities: declare
chaostoolkit-opentracing's OTLP control (``chaostracing.oltp``) for those.

Arguments (all optional): ``endpoint`` (default the ``OTEL_EXPORTER_OTLP_ENDPOINT`` environment
variable, else ``http://localhost:4318``), ``headers`` (a mapping sent with every request, e.g. a
vendor's API key from the secrets: ``{"DD-API-KEY": "${dd_api_key}"}``; never logged),
``service_name`` (default ``chaosgenesys``), ``timeout`` (seconds, default 10). An endpoint
that does not answer or refuses never stops or fails the run: a WARNING line says what was not
sent, and the journal's ``chaosgenesys-telemetry`` extension (``{"endpoint", "sent":
{"metrics", "spans"}, "error"}``) says it too.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl

from chaosgenesys.arguments import require_number, require_text
from chaosgenesys.controls.journal import add_extension

__all__ = ["after_experiment_control", "before_experiment_control", "validate_control"]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-telemetry"
ARGUMENTS = frozenset({"endpoint", "headers", "service_name", "timeout"})
DEFAULT_ENDPOINT = "http://localhost:4318"


def _arguments(
    endpoint: Any, headers: Any, service_name: Any, timeout: Any
) -> tuple[str, dict[str, str], str, float]:
    url = require_text("endpoint", endpoint, allow_empty=True).strip() or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", DEFAULT_ENDPOINT
    )
    if not url.startswith(("http://", "https://")):
        raise ActivityFailed(f"endpoint must be an http(s) URL, got {url!r}")
    if headers is None:
        headers = {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ActivityFailed("headers must be a mapping of header names to strings")
    name = require_text("service_name", service_name)
    seconds = require_number("timeout", timeout, minimum=0.0, maximum=300.0,
                             exclusive_minimum=True)
    return url.rstrip("/"), dict(headers), name, seconds


def before_experiment_control(
    context: Any,
    endpoint: str = "",
    headers: dict[str, str] | None = None,
    service_name: str = "chaosgenesys",
    timeout: float = 10.0,
    **kwargs: Any,
) -> None:
    """Refuse the run (``InterruptExecution``) on bad arguments, before anything runs."""
    try:
        _arguments(endpoint, headers, service_name, timeout)
    except ActivityFailed as error:
        raise InterruptExecution(f"telemetry control: {error}") from None


def _run_attributes(journal: dict[str, Any], title: str) -> dict[str, str]:
    start = str(journal.get("start") or "")
    digest = hashlib.sha256(f"{title}\n{start}".encode()).hexdigest()[:16]
    return {"chaostoolkit.experiment.title": title, "chaosgenesys.run.id": digest,
            "chaosgenesys.run.start": start}


def _nanos(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _watched(exporter: Any, results: list[bool]) -> Any:
    """``exporter`` noting whether each of its exports succeeded (the SDK's flush says only
    that it flushed, not that the receiver took it)."""
    send = exporter.export

    def export(*args: Any, **kwargs: Any) -> Any:
        result = send(*args, **kwargs)
        results.append(getattr(result, "name", "") == "SUCCESS")
        return result

    exporter.export = export
    return exporter


def export(
    journal: dict[str, Any], endpoint: str, headers: dict[str, str], service_name: str,
    timeout: float,
) -> dict[str, Any]:
    """Send the journal's figures and windows; what was sent and the error, if any."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from chaosgenesys.results.timeline import timeline

    data = timeline(journal)
    run = _run_attributes(journal, str(data["title"]))
    resource = Resource.create({"service.name": service_name, **run})
    outcomes: dict[str, list[bool]] = {"metrics": [], "spans": []}
    metric_exporter = _watched(
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics", headers=headers, timeout=timeout),
        outcomes["metrics"],
    )
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("chaosgenesys")
    reconnect = meter.create_histogram("chaosgenesys.desktop.reconnect_latency", unit="ms")
    outages = meter.create_counter("chaosgenesys.desktop.websocket_outages")
    off_queue = meter.create_counter("chaosgenesys.desktop.not_on_queue", unit="s")
    api = meter.create_histogram("chaosgenesys.api.latency", unit="ms")
    recorded = 0
    for user, desktop in data["desktops"].items():
        labels = {**run, "user_id": user}
        for _, latency in desktop["reconnects"]:
            reconnect.record(latency, labels)
            recorded += 1
        outages.add(len(desktop["outages"]), labels)
        off_queue.add(sum(max(0.0, end - begin) for begin, end in desktop["off_queue"]), labels)
        recorded += 2
    for source, points in data["latency"].items():
        for _, top, _, _ in points:
            api.record(top, {**run, "source": source})
            recorded += 1
    tracing = TracerProvider(resource=resource)
    tracing.add_span_processor(BatchSpanProcessor(_watched(
        OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers, timeout=timeout),
        outcomes["spans"],
    )))
    tracer = tracing.get_tracer("chaosgenesys")
    windows: list[tuple[str, float, float, dict[str, Any]]] = []
    for fault in data["faults"]:
        windows.append(("chaosgenesys.fault", fault["start"], fault["end"], {
            "chaosgenesys.fault.name": fault["name"],
            "chaosgenesys.fault.action": str(fault.get("action", "")),
            "chaosgenesys.fault.ended_by": str(fault.get("ended_by", "")),
        }))
    for phase in data["phases"]:
        windows.append((f"chaosgenesys.protocol.{phase['name']}", phase["start"], phase["end"],
                        {}))
    for user, desktop in data["desktops"].items():
        for begin, end in desktop["outages"]:
            windows.append(("chaosgenesys.desktop.outage", begin, end, {"user_id": user}))
    for name, begin, end, attributes in windows:
        span = tracer.start_span(name, start_time=_nanos(begin),
                                 attributes={**run, **attributes})
        span.end(end_time=_nanos(max(begin, end)))
    meters.force_flush(timeout_millis=int(timeout * 1000))
    tracing.force_flush(timeout_millis=int(timeout * 1000))
    meters.shutdown(timeout_millis=int(timeout * 1000))
    tracing.shutdown()
    problems = [
        f"the {what} were not accepted by {endpoint}/v1/{path}"
        for what, path, sent in (("metrics", "metrics", recorded), ("spans", "traces",
                                                                    len(windows)))
        if sent and (not outcomes[what] or not all(outcomes[what]))
    ]
    error = "; ".join(problems)
    return {"endpoint": endpoint, "sent": {"metrics": recorded, "spans": len(windows)},
            "error": error}


def after_experiment_control(
    context: Any,
    state: Any = None,
    endpoint: str = "",
    headers: dict[str, str] | None = None,
    service_name: str = "chaosgenesys",
    timeout: float = 10.0,
    **kwargs: Any,
) -> None:
    """Send the run's figures and windows; a failure is a WARNING, never the run's end."""
    if not isinstance(state, dict):
        return
    try:
        url, extra, name, seconds = _arguments(endpoint, headers, service_name, timeout)
        outcome = export(state, url, extra, name, seconds)
    except ImportError as error:
        outcome = {"endpoint": str(endpoint), "sent": {"metrics": 0, "spans": 0},
                   "error": f"OpenTelemetry is not installed ({error.name}): pip install "
                            "'chaosgenesys[otel]'"}
    except Exception as error:  # telemetry must never cost the run
        outcome = {"endpoint": str(endpoint), "sent": {"metrics": 0, "spans": 0},
                   "error": f"{type(error).__name__}: {error}"}
    if outcome["error"]:
        logger.warning("Telemetry: not sent to %s: %s", outcome["endpoint"], outcome["error"])
    else:
        logger.info("Telemetry: %d metric value(s) and %d span(s) sent to %s",
                    outcome["sent"]["metrics"], outcome["sent"]["spans"], outcome["endpoint"])
    add_extension(state, {"name": EXTENSION, **outcome})


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: known arguments, well formed unless ``${...}`` substitutions."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("telemetry control: arguments must be a mapping")
    unknown = set(arguments) - ARGUMENTS
    if unknown:
        raise InvalidControl(f"telemetry control: unknown argument(s) {', '.join(sorted(unknown))}")
    plain = {k: v for k, v in arguments.items() if "${" not in str(v)}
    try:
        _arguments(plain.get("endpoint", ""), plain.get("headers"),
                   plain.get("service_name", "chaosgenesys"), plain.get("timeout", 10.0))
    except ActivityFailed as error:
        raise InvalidControl(f"telemetry control: {error}") from None
