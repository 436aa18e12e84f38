"""Every API call of the run, gathered as it happens, so a phase of any length can be measured.

Three vantage points, the kill switch's: the experiment's own calls through the platform client
(``chaosgenesys.platform.metrics``, this process), the calls this run's synthetic desktops made
(their status files keep the last five minutes: ``[timestamp, latency_ms, status]``) and the
REST calls of the pages this run's browser observers watch (``chaosgenesys.browser.feed``;
latency only). :class:`CallCollector` reads them every ``interval`` seconds on a daemon thread
and keeps each call once, so a baseline of five minutes followed by an injection of five more
is measured whole even though a desktop's status file forgets what is older than five minutes.

It also keeps, for :func:`desktop_counters`, what the desktops themselves count (disconnects,
reconnects, recent reconnect latencies, logouts, interactions lost): a phase's figures are the
difference between its two ends. Pure Python; reads files, no network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Call", "CallCollector", "desktop_counters"]

#: Calls older than this are dropped from the de-duplication memory (the desktops' status files
#: keep five minutes).
SEEN_MEMORY_SECONDS = 360.0


@dataclass(frozen=True)
class Call:
    """One finished API call: when it ended (epoch seconds), how long it took, its final status
    (``None``: no answer, or not known for a browser page's call) and whose it was (``tooling``,
    ``desktop``, ``browser``)."""

    at: float
    latency_ms: float
    status: int | None
    source: str

    @property
    def began(self) -> float:
        """When the call was sent (epoch seconds)."""
        return self.at - self.latency_ms / 1000.0

    @property
    def failed(self) -> bool | None:
        """``True`` for no answer or a status of 400 and above; ``None`` when not known."""
        if self.source == "browser":
            return None
        return self.status is None or self.status >= 400


class CallCollector:
    """Gathers this run's API calls every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        interval: float = 1.0,
        since: float | None = None,
        desktops: Callable[[], list[tuple[str, dict[str, Any]]]] | None = None,
    ) -> None:
        """``since``: calls answered earlier are left out (default: now); ``desktops``: the
        synthetic desktops' ``(run id, status file)`` to read (default: this run's running
        ones, ``chaosgenesys.agent.this_run.running_agents``)."""
        self.interval = interval
        self.started = time.time() if since is None else since
        self._desktops = desktops
        self._calls: list[Call] = []
        self._seen: dict[tuple[Any, ...], float] = {}
        self._tooling_after = self.started
        self._browser: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="chaosgenesys-protocol-calls", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=max(5.0, 2 * self.interval))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.collect()

    def collect(self) -> None:
        """Read the three sources now (also called at every phase boundary)."""
        with self._lock:
            try:
                self._collect_tooling()
                self._collect_desktops()
                self._collect_browser()
            except Exception:  # a source being rewritten must not end the measurement
                import logging

                logging.getLogger("chaostoolkit").debug(
                    "protocol: reading the calls failed", exc_info=True
                )

    def _collect_tooling(self) -> None:
        import sys

        if "chaosgenesys.platform.metrics" not in sys.modules:
            return  # the recorder lives there: no call by the tooling in this process
        from chaosgenesys.platform import metrics

        newest = self._tooling_after
        for record in metrics.recorder().records():
            if record.timestamp <= self._tooling_after:
                continue
            newest = max(newest, record.timestamp)
            self._calls.append(
                Call(record.timestamp, record.latency_ms, record.status, "tooling")
            )
        self._tooling_after = newest

    def _collect_desktops(self) -> None:
        from chaosgenesys.agent.this_run import running_agents

        now = time.time()
        for run_id, status in (self._desktops or running_agents)():
            for entry in status.get("api_calls") or ():
                if not isinstance(entry, list) or len(entry) < 2:
                    continue
                at, latency = float(entry[0]), float(entry[1])
                code = entry[2] if len(entry) > 2 and isinstance(entry[2], int) else None
                if at < self.started:
                    continue  # answered before the protocol began
                key = (run_id, at, latency, code)
                if key in self._seen:
                    continue
                self._seen[key] = at
                self._calls.append(Call(at, latency, code, "desktop"))
        forget = now - SEEN_MEMORY_SECONDS
        if len(self._seen) > 1000:
            self._seen = {key: at for key, at in self._seen.items() if at >= forget}

    def _collect_browser(self) -> None:
        from chaosgenesys.browser.feed import BrowserFeed

        if self._browser is None:
            self._browser = BrowserFeed()
        for at, latency in self._browser.poll()["calls"]:
            if at >= self.started:
                self._calls.append(Call(at, latency, None, "browser"))

    def calls(self, start: float, end: float) -> list[Call]:
        """The calls that *began* in ``[start, end]`` (and had ended when last collected),
        oldest first. A call is the phase's in which it was sent: one slowed by a fault and
        answered just after the fault's removal belongs to the fault's window, not to the
        recovery."""
        with self._lock:
            found = [call for call in self._calls if start <= call.began <= end]
        return sorted(found, key=lambda call: call.began)


def desktop_counters() -> dict[str, dict[str, Any]]:
    """What each synthetic desktop of this run counts now, by ``<run id>/<user id>``:
    ``disconnects``, ``reconnects``, ``recent_reconnects`` (``[end, latency_ms]``),
    ``logged_out``, ``interactions_lost``, ``connected``."""
    from chaosgenesys.agent.this_run import running_agents

    counters: dict[str, dict[str, Any]] = {}
    for run_id, status in running_agents():
        for user, summary in (status.get("agents") or {}).items():
            if not isinstance(summary, dict):
                continue
            counters[f"{run_id}/{user}"] = {
                "user_id": str(user),
                "disconnects": int(summary.get("disconnects") or 0),
                "reconnects": int(summary.get("reconnects") or 0),
                "recent_reconnects": list(summary.get("recent_reconnects") or ()),
                "logged_out": bool(summary.get("logged_out")),
                "interactions_lost": int(summary.get("interactions_lost") or 0),
                "connected": bool(summary.get("connected")),
            }
    return counters
