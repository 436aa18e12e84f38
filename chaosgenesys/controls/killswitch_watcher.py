"""The kill switch's watcher: the background thread that checks the signals and pulls the switch.

:class:`Watcher` samples every ``check_interval`` seconds (:mod:`killswitch_signals`), and on a
breach reverts every fault of this run with :func:`revert_everything`, records why and asks the
run to stop. The control's hooks (:mod:`chaosgenesys.controls.killswitch`) arm and disarm it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from chaoslib.types import Configuration

from chaosgenesys.controls.killswitch_signals import (
    AgentView,
    Signal,
    Thresholds,
    api_sample,
    websocket_sample,
)

__all__ = ["EXTENSION", "Watcher", "revert_everything"]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-killswitch"


def revert_everything(
    configuration: Configuration = None, clear_sandbox_faults: bool = False
) -> list[dict[str, Any]]:
    """Revert every fault of this run and clear sandbox faults; one entry per thing reverted.

    The run is this process and the processes it started (``registry.revert_all``'s default
    scope): another run's faults in a shared registry directory are left alone. Never raises:
    a failure is an entry with ``status: failed`` (and logged at ERROR).

    Each entry has ``at`` (epoch seconds: when its revert was done) and the registry's ``id``
    (the ``fault_id``/``id`` the fault action answered); the sandbox's entry has
    ``fault_ids``, the server-side faults it removed (the ``id`` ``inject_api_fault``
    answered), when the sandbox is the one the sandbox control started. That is what the
    verdict matches a fault action to, to end its window here.
    """
    from chaosgenesys.faults.registry import revert_all

    results: list[dict[str, Any]] = []
    try:
        done = revert_all(scope="run")
    except Exception as error:  # the registry itself unreadable: say so, go on
        logger.error("Kill switch: could not revert the recorded faults: %s", error)
        results.append({"id": None, "kind": "registry", "status": "failed", "error": str(error),
                        "at": round(time.time(), 3)})
    else:
        at = round(time.time(), 3)
        results.extend({**entry, "at": at} for entry in done)
    from chaosgenesys.controls.sandbox import running_sandbox

    sandbox = running_sandbox()
    fault_ids: list[str] | None = None
    try:
        if sandbox is not None:
            # one by one, to know which: the faults in force now, then any added meanwhile
            fault_ids = [
                str(fault["id"]) for fault in sandbox.faults()
                if sandbox.remove_fault(str(fault["id"]))
            ]
            cleared = len(fault_ids) + sandbox.clear_faults()
        elif clear_sandbox_faults:
            from chaosgenesys.sandbox.actions import clear_sandbox_faults as clear

            cleared = int(clear(configuration).get("cleared") or 0)
        else:
            cleared = 0
    except Exception as error:
        logger.error("Kill switch: could not clear the sandbox faults: %s", error)
        results.append({"id": None, "kind": "sandbox", "status": "failed", "error": str(error),
                        "at": round(time.time(), 3)})
    else:
        if cleared:
            results.append(
                {
                    "id": None,
                    "kind": "sandbox",
                    "description": f"{cleared} sandbox server-side fault(s)",
                    "status": "reverted",
                    "at": round(time.time(), 3),
                    **({"fault_ids": fault_ids} if fault_ids is not None else {}),
                }
            )
    return results


class Watcher:
    """The background thread: samples every ``check_interval`` seconds until stopped."""

    def __init__(
        self,
        thresholds: Thresholds,
        configuration: Configuration = None,
        stop_immediately: bool = False,
        clear_sandbox_faults: bool = False,
        prometheus: Any = None,
    ) -> None:
        self.thresholds = thresholds
        #: chaosgenesys.controls.promql.PrometheusSource, or None
        self.prometheus = prometheus
        self.run_samples = prometheus is None or prometheus.run_samples
        self.configuration = configuration
        self.stop_immediately = stop_immediately
        self.clear_sandbox_faults = clear_sandbox_faults
        self.started = time.time()
        self.reason: str | None = None
        self.tripped_at: float | None = None
        self.reverted: list[dict[str, Any]] = []
        self.last_sample: dict[str, Any] = {}
        self.checks = 0
        self.peaks: dict[str, float | None] = {"api_p99_ms": None, "websocket_error_rate": None}
        self._api = Signal(thresholds.api_window_seconds, keep_without_data=True)
        #: The last API sample that had calls (the verdict a check without calls keeps).
        self._api_judged: dict[str, Any] = {}
        self._ws = Signal(thresholds.websocket_window_seconds)
        self._agents = AgentView()
        self._browser: Any = None  # chaosgenesys.browser.feed.BrowserFeed, made at first check
        self._browser_calls: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop, name="chaosgenesys-killswitch", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (a check in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=max(5.0, 2 * self.thresholds.check_interval))

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def _loop(self) -> None:
        while not self._stop.wait(self.thresholds.check_interval):
            try:
                if self.check():
                    return
            except Exception:  # a sampling error must not kill the switch
                logger.warning("Kill switch: a check failed", exc_info=True)

    def check(self, now: float | None = None) -> bool:
        """One check; True when it tripped the switch (then the thread ends)."""
        now = time.time() if now is None else now
        limits = self.thresholds
        from chaosgenesys.agent.this_run import running_agents

        agents = running_agents()
        pages = self._poll_browser(now)
        api = api_sample(
            self.started,
            limits.api_window_seconds,
            limits.max_api_p99_ms,
            agents,
            self._browser_calls,
        )
        ws = websocket_sample(self._agents, limits.max_websocket_error_rate, agents, pages)
        if api["over"] is not None:
            self._api_judged = api
        api_breached = self._api.update(api["over"], now) and self.run_samples
        ws_breached = self._ws.update(ws["over"], now) and self.run_samples
        with self._lock:
            self.checks += 1
            for key, value in (
                ("api_p99_ms", api["p99_ms"]),
                ("websocket_error_rate", ws["error_rate"]),
            ):
                peak = self.peaks[key]
                if value is not None and (peak is None or value > peak):
                    self.peaks[key] = value
            self.last_sample = {"at": round(now, 3), "api": api, "websocket": ws}
        reasons = []
        if api_breached:
            judged = api if api["over"] is not None else self._api_judged
            since = (
                f"in the last {limits.api_window_seconds:g} s"
                if judged is api
                else "at the last check that saw calls (none since)"
            )
            reasons.append(
                f"API latency p99 {judged['p99_ms']} ms over {judged['calls']} call(s) {since} "
                f"has stayed above {limits.max_api_p99_ms:g} ms for "
                f"{limits.api_window_seconds:g} s"
            )
        if ws_breached:
            reasons.append(
                f"WebSocket error rate {ws['error_rate']:.0%} ({len(ws['in_error'])} of "
                f"{ws['agents']} desktop socket(s) down or dropped) has stayed above "
                f"{limits.max_websocket_error_rate:.0%} for {limits.websocket_window_seconds:g} s"
            )
        if self.prometheus is not None:
            reasons.extend(self.prometheus.judge(self.thresholds, now))
        if not reasons:
            return False
        self.trip("; ".join(reasons))
        return True

    def _poll_browser(self, now: float) -> dict[str, dict[str, bool]]:
        """New REST calls and the WebSocket state of this run's browser observers."""
        from chaosgenesys.browser.feed import BrowserFeed

        if self._browser is None:
            self._browser = BrowserFeed()
        polled = self._browser.poll()
        keep = now - self.thresholds.api_window_seconds
        self._browser_calls = [c for c in self._browser_calls if c[0] >= keep]
        self._browser_calls.extend(polled["calls"])
        pages: dict[str, dict[str, bool]] = polled["pages"]
        return pages

    def trip(self, reason: str) -> None:
        """Pull the switch: revert everything, record why, ask the run to stop."""
        with self._lock:
            if self.reason is not None:
                return
            self.reason = f"kill switch: {reason}"
            self.tripped_at = time.time()
        logger.warning("%s: reverting every fault and stopping the run", self.reason)
        reverted = revert_everything(self.configuration, self.clear_sandbox_faults)
        with self._lock:
            self.reverted = reverted
        done = [r for r in reverted if r.get("status") in ("reverted", "gone")]
        failed = [r for r in reverted if r.get("status") == "failed"]
        logger.warning(
            "Kill switch: %d fault(s) reverted%s",
            len(done),
            f", {len(failed)} failed (run `chaosgenesys cleanup`)" if failed else "",
        )
        # Only while Chaos Toolkit's exit handlers are installed: SIGUSR1's default kills.
        if (
            self.stop_immediately
            and not self._stop.is_set()
            and signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        ):
            from chaoslib.exit import exit_gracefully

            exit_gracefully()

    def _longest_over(self) -> dict[str, float]:
        """The longest each signal stayed over its limit, by whichever judged source (the
        run's own samples, Prometheus) came closer to the window that trips the switch."""
        longest = {"api_p99_ms": 0.0, "websocket_error_rate": 0.0}
        if self.run_samples:
            longest = {"api_p99_ms": self._api.longest, "websocket_error_rate": self._ws.longest}
        if self.prometheus is not None:
            for key, seconds in self.prometheus.longest_over().items():
                longest[key] = max(longest[key], seconds)
        return {key: round(seconds, 1) for key, seconds in longest.items()}

    def report(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": EXTENSION,
                "tripped": self.reason is not None,
                "reason": self.reason,
                "tripped_at": self.tripped_at,
                "reverted": list(self.reverted),
                "thresholds": self.thresholds.to_dict(),
                "checks": self.checks,
                "peaks": dict(self.peaks),
                "longest_over_seconds": self._longest_over(),
                "last_sample": dict(self.last_sample),
                "run_samples": self.run_samples,
                **(
                    {"prometheus": self.prometheus.report(), "blind": self.prometheus.blind}
                    if self.prometheus is not None
                    else {}
                ),
            }
