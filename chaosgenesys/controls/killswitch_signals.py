"""The kill switch's signals: its thresholds, what one check samples, and when a breach counts.

:class:`Thresholds` holds the limits (the guide's defaults) and :func:`check_thresholds` checks
them; :func:`api_sample` and :func:`websocket_sample` measure the run's API latency and its
desktops' WebSocket error rate at one check; a :class:`Signal` says when a signal has been over
its limit for its whole window. No thread and no fault here: :mod:`killswitch_watcher` runs the
checks, :mod:`promql` judges Prometheus's figures with the same :class:`Signal`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

from chaosgenesys.arguments import require_number

__all__ = [
    "NUMBERS",
    "AgentView",
    "Signal",
    "Thresholds",
    "api_sample",
    "check_thresholds",
    "websocket_sample",
]

NUMBERS = (
    "max_api_p99_ms",
    "api_window_seconds",
    "max_websocket_error_rate",
    "websocket_window_seconds",
    "check_interval",
)


@dataclass(frozen=True)
class Thresholds:
    """The kill switch's limits (the guide's defaults)."""

    max_api_p99_ms: float = 2000.0
    api_window_seconds: float = 30.0
    max_websocket_error_rate: float = 0.05
    websocket_window_seconds: float = 10.0
    check_interval: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in NUMBERS}


#: The thresholds may come from the configuration, where a value read from the environment is
#: text: a number written as text is read as one.
_number = functools.partial(require_number, numeric_text=True)


def check_thresholds(**values: Any) -> Thresholds:
    """Checked thresholds; ``ActivityFailed`` naming the bad argument."""
    return Thresholds(
        max_api_p99_ms=_number("max_api_p99_ms", values["max_api_p99_ms"], minimum=0,
                               exclusive_minimum=True),
        api_window_seconds=_number("api_window_seconds", values["api_window_seconds"], minimum=0),
        max_websocket_error_rate=_number(
            "max_websocket_error_rate", values["max_websocket_error_rate"], minimum=0, maximum=1
        ),
        websocket_window_seconds=_number(
            "websocket_window_seconds", values["websocket_window_seconds"], minimum=0
        ),
        check_interval=_number(
            "check_interval", values["check_interval"], minimum=0.01, maximum=60
        ),
    )


@dataclass
class Signal:
    """One watched signal: since when it has been over its limit (None: it is not), and the
    longest it has stayed over (seconds, as the checks saw it): how close the run came."""

    window: float
    over_since: float | None = None

    #: With no data at a check (None), keep the last verdict instead of resetting.
    keep_without_data: bool = False

    #: The longest stretch over the limit so far, from the first check over it to the last.
    longest: float = 0.0

    def update(self, over: bool | None, now: float) -> bool:
        """Feed one check (None: no data, which resets unless ``keep_without_data``); True when
        breached for the window."""
        if over is None and self.keep_without_data:
            if self.over_since is None:
                return False
            return self._over_for(self.over_since, now) >= self.window
        if not over:
            self.over_since = None
            return False
        if self.over_since is None:
            self.over_since = now
        return self._over_for(self.over_since, now) >= self.window

    def _over_for(self, since: float, now: float) -> float:
        stretch = now - since
        self.longest = max(self.longest, stretch)
        return stretch


@dataclass
class AgentView:
    """The last ``disconnects`` counter seen per (run, user)."""

    disconnects: dict[tuple[str, str], int] = field(default_factory=dict)


def api_sample(
    started: float,
    window: float,
    limit: float,
    agents: list[tuple[str, dict[str, Any]]],
    browser_calls: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """p99 of the calls completed in the last ``window`` seconds (since the watch began): the
    experiment's own calls through the platform client and the synthetic agents' calls, plus
    the agents' calls still under way for longer than ``limit`` (at their age so far)."""
    from chaosgenesys.platform import metrics

    now = time.time()
    since = max(started, now - window)
    latencies = [
        r.latency_ms for r in metrics.recorder().records(window) if r.timestamp >= since
    ]
    own = len(latencies)
    in_flight = 0
    for _, status in agents:
        for call in status.get("api_calls") or ():
            if isinstance(call, list) and len(call) >= 2 and float(call[0]) >= since:
                latencies.append(float(call[1]))
        for begun in status.get("api_in_flight") or ():
            if isinstance(begun, int | float) and not isinstance(begun, bool):
                age_ms = (now - float(begun)) * 1000
                if age_ms > limit:
                    latencies.append(age_ms)
                    in_flight += 1
    browser = [latency for at, latency in browser_calls if at >= since]
    latencies.extend(browser)
    p99 = metrics.percentile(latencies, 0.99)
    return {
        "calls": len(latencies),
        "agent_calls": len(latencies) - own - len(browser),
        "browser_calls": len(browser),
        "in_flight": in_flight,
        "p99_ms": None if p99 is None else round(p99, 1),
        "over": None if p99 is None else p99 > limit,
    }


def websocket_sample(
    view: AgentView,
    limit: float,
    agents: list[tuple[str, dict[str, Any]]],
    pages: dict[str, dict[str, bool]] | None = None,
) -> dict[str, Any]:
    """The fraction of running synthetic agents and observed browser pages whose WebSocket is
    in error now."""
    count = 0
    errors: list[str] = []
    for observer_id, page in (pages or {}).items():
        if page.get("ready"):
            count += 1
            if page.get("in_error"):
                errors.append(f"browser:{observer_id}")
    seen: dict[tuple[str, str], int] = {}
    for run_id, status in agents:
        for user, summary in (status.get("agents") or {}).items():
            if not isinstance(summary, dict) or not summary.get("ready"):
                continue  # not connected once yet: starting, not failing
            key = (run_id, str(user))
            disconnects = int(summary.get("disconnects") or 0)
            seen[key] = disconnects
            count += 1
            dropped = disconnects > view.disconnects.get(key, disconnects)
            if dropped or not summary.get("connected"):
                errors.append(str(user))
    view.disconnects = seen
    rate = len(errors) / count if count else None
    return {
        "agents": count,
        "in_error": errors,
        "error_rate": None if rate is None else round(rate, 4),
        "over": None if rate is None else rate > limit,
    }
