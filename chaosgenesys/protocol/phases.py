"""The guide's execution protocol as this run lives it: baseline, injection, recovery.

One :class:`Protocol` per ``chaos run`` process (module state, like the controls'): a new
baseline starts a new one. The baseline is measured by ``measure_baseline``; the injection is
everything from the baseline's end to the fault's removal (the moment ``time_to_recover``
begins; until then it is still open and ends "now"); the recovery runs from the fault's removal
to the moment the steady state holds again. Each phase's figures are computed once it ends,
from :class:`chaosgenesys.protocol.calls.CallCollector` and the desktops' own counters.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chaosgenesys.protocol.calls import Call, CallCollector, desktop_counters

__all__ = [
    "METRICS",
    "Phase",
    "Protocol",
    "begin",
    "current",
    "end",
    "figures",
    "iso",
    "metric_value",
    "summary",
]

#: What a hypothesis may compare with the baseline: name → (section, key) in a phase's figures.
METRICS: dict[str, tuple[str, str]] = {
    "api_p50_ms": ("api", "p50_ms"),
    "api_p99_ms": ("api", "p99_ms"),
    "api_max_ms": ("api", "max_ms"),
    "api_error_rate": ("api", "error_rate"),
    "desktop_disconnects": ("desktops", "disconnects"),
    "desktop_reconnects": ("desktops", "reconnects"),
    "reconnect_latency_max_ms": ("desktops", "reconnect_latency_max_ms"),
}


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC time with milliseconds (``None`` stays ``None``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass
class Phase:
    """One phase: its window and the desktops' counters at both ends."""

    name: str
    start: float
    desktops_at_start: dict[str, dict[str, Any]]
    end: float | None = None
    desktops_at_end: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Protocol:
    """This run's protocol: its call collector, its phases and the recovery's outcome."""

    collector: CallCollector
    phases: dict[str, Phase] = field(default_factory=dict)
    recovery: dict[str, Any] | None = None

    def open(
        self, name: str, at: float | None = None, after: str | None = None
    ) -> Phase:
        """Begin phase ``name`` now, or where phase ``after`` ended (its end and the desktops'
        counters then), or at ``at``."""
        previous = self.phases.get(after) if after else None
        if previous is not None and previous.end is not None:
            phase = Phase(name, previous.end, dict(previous.desktops_at_end))
        else:
            phase = Phase(name, time.time() if at is None else at, desktop_counters())
        self.phases[name] = phase
        return phase

    def close(self, name: str, at: float | None = None) -> dict[str, Any]:
        """End phase ``name`` now (or ``at``): the desktops' counters are taken now; its figures
        as they stand now are returned."""
        phase = self.phases[name]
        phase.end = time.time() if at is None else at
        phase.desktops_at_end = desktop_counters()
        return self.figures_of(name) or {}

    def figures_of(self, name: str) -> dict[str, Any] | None:
        """The figures of phase ``name`` (``None``: no such phase), computed when asked: the
        calls sent in it that have ended by now, so a call slowed by the fault and answered
        after the fault's removal still counts in the fault's window. An open phase ends now."""
        phase = self.phases.get(name)
        if phase is None:
            return None
        self.collector.collect()
        if phase.end is None:
            end, after = time.time(), desktop_counters()
        else:
            end, after = phase.end, phase.desktops_at_end
        return figures(
            phase.name,
            self.collector.calls(phase.start, end),
            phase.start,
            end,
            phase.desktops_at_start,
            after,
        )


_lock = threading.Lock()
_current: Protocol | None = None


def begin() -> Protocol:
    """Start a new protocol (a new baseline): the previous one's collector stops."""
    global _current
    with _lock:
        if _current is not None:
            _current.collector.stop()
        collector = CallCollector()
        collector.start()
        _current = Protocol(collector)
        return _current


def end() -> None:
    """Forget this run's protocol (its collector stops): the next run starts clean."""
    global _current
    with _lock:
        if _current is not None:
            _current.collector.stop()
        _current = None


def current(create: bool = False) -> Protocol | None:
    """This run's protocol; a new one when there is none and ``create``."""
    with _lock:
        found = _current
    if found is None and create:
        return begin()
    return found


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def figures(
    name: str,
    calls: list[Call],
    start: float,
    end: float,
    desktops_before: dict[str, dict[str, Any]],
    desktops_after: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A phase's figures: the API calls sent in it (p50/p99/max latency, errors, error rate over
    the calls whose status is known) and what the desktops counted in it."""
    from chaosgenesys.platform.metrics import percentile  # the package imports requests

    latencies = [call.latency_ms for call in calls]
    judged = [call for call in calls if call.failed is not None]
    errors = sum(1 for call in judged if call.failed)
    by_source = {source: 0 for source in ("tooling", "desktop", "browser")}
    for call in calls:
        by_source[call.source] = by_source.get(call.source, 0) + 1
    disconnects = reconnects = lost = 0
    logged_out: list[str] = []
    worst: float | None = None
    for key, after in desktops_after.items():
        before = desktops_before.get(key, {})
        disconnects += after["disconnects"] - int(before.get("disconnects", 0))
        reconnects += after["reconnects"] - int(before.get("reconnects", 0))
        lost += after["interactions_lost"] - int(before.get("interactions_lost", 0))
        if after["logged_out"] and not before.get("logged_out"):
            logged_out.append(after["user_id"])
        for entry in after["recent_reconnects"]:
            if isinstance(entry, list) and len(entry) >= 2 and start <= float(entry[0]) <= end:
                worst = float(entry[1]) if worst is None else max(worst, float(entry[1]))
    return {
        "phase": name,
        "start": iso(start),
        "end": iso(end),
        "seconds": round(end - start, 3),
        "api": {
            "calls": len(calls),
            "p50_ms": _rounded(percentile(latencies, 0.50)),
            "p99_ms": _rounded(percentile(latencies, 0.99)),
            "max_ms": _rounded(max(latencies)) if latencies else None,
            "errors": errors,
            "error_rate": round(errors / len(judged), 4) if judged else None,
            "by_source": by_source,
        },
        "desktops": {
            "count": len(desktops_after),
            "disconnects": disconnects,
            "reconnects": reconnects,
            "reconnect_latency_max_ms": _rounded(worst),
            "logged_out": sorted(logged_out),
            "interactions_lost": lost,
        },
    }


def metric_value(phase_figures: dict[str, Any], metric: str) -> float | None:
    """The value of ``metric`` (a key of :data:`METRICS`) in a phase's figures."""
    section, key = METRICS[metric]
    value = (phase_figures.get(section) or {}).get(key)
    return None if value is None else float(value)


def summary() -> dict[str, Any] | None:
    """What this run's protocol measured (``None``: no protocol activity ran): each phase's
    figures (an open phase up to now) and the recovery's outcome."""
    protocol = current()
    if protocol is None:
        return None
    return {
        "phases": {name: protocol.figures_of(name) for name in protocol.phases},
        "time_to_recover": dict(protocol.recovery) if protocol.recovery else None,
    }
