"""Chaos Toolkit control: revert every fault and stop the run when a threshold is breached.

The resilience guide's execution protocol: pull the kill switch when the WebSocket error rate
stays above 5 % for more than 10 s, or the API latency p99 above 2,000 ms for more than 30 s.
Declare the control (the arguments shown are the defaults; all are optional)::

    "controls": [
      {
        "name": "genesys-killswitch",
        "provider": {
          "type": "python",
          "module": "chaosgenesys.controls.killswitch",
          "arguments": {
            "max_api_p99_ms": 2000, "api_window_seconds": 30,
            "max_websocket_error_rate": 0.05, "websocket_window_seconds": 10,
            "check_interval": 1.0
          }
        }
      }
    ]

When the experiment starts (``before_experiment_control``) a background thread starts; every
``check_interval`` seconds it samples

* **API latency**: the calls completed in the last ``api_window_seconds``: those the
  experiment's probes and actions made through the platform client in this process
  (``chaosgenesys.platform.metrics``) and those the running synthetic agents made (their status
  files' ``api_calls``: REST calls and token requests as the desktop lives them, retry waits
  included; an agent inside a faulty network namespace sees the latency its users would). A
  synthetic agent's REST call still under way (the status file's ``api_in_flight``) for longer
  than ``max_api_p99_ms`` counts as a call of its age so far: a call that hangs is slow before
  it ends. The API is *over the limit* at a check when their p99 (nearest rank) is above
  ``max_api_p99_ms``. A check that finds no such call (desktops sync every 30 s by default, so
  a window can hold none) keeps the previous check's verdict: slowness that nothing has shown
  to be over stays a breach, and fast calls stay fast.
* **WebSocket error rate**: the running synthetic agents' summaries (the status files that
  ``chaosgenesys.agent.probes.agent_summary`` reads). Only this run's agents count (those
  started by the ``chaos run`` process, e.g. by the sandbox or network-lab control): another
  run's agents in the same runtime directory never trip this run's switch (their API calls do
  not count either). At a check, an agent's WebSocket is *in error* when it has connected once
  and is not connected now, or when it dropped its socket since the previous check (its
  ``disconnects`` grew). The error rate is the fraction of the running agents whose socket is
  in error; it is *over the limit* above
  ``max_websocket_error_rate``. Without running agents there is no WebSocket error rate.
* **The browser** (``chaosgenesys.browser``): this run's browser observers count as desktops
  too. The REST calls their page made (``rest`` events) join the API latency sample, and each
  observed page whose WebSocket has had a frame once is *in error* at a check when one of its
  sockets closed or failed since the previous check, or no frame has come in since its last
  close (``chaosgenesys/browser/feed.py`` reads the observers' logs as they grow).

A threshold is breached when its signal has been over the limit at every check for its whole
window (``api_window_seconds``, ``websocket_window_seconds``): a single slow call or a socket
that reconnects at once does not pull the switch; slow calls that keep coming, or sockets that
stay down, do. Then the thread, at once:

1. reverts every fault of this run (``chaosgenesys.faults.registry.revert_all()``, whose
   default scope is the run: the faults recorded by the ``chaos run`` process or by a process
   it started; another run's faults in the same registry directory are left alone) and clears
   the server-side faults of the sandbox started by ``chaosgenesys.controls.sandbox`` (or, with
   ``clear_sandbox_faults: true``, of the sandbox at ``genesys_api_url``);
2. logs why at WARNING;
3. stops the run: the next activity boundary (``before_activity_control``, also
   ``before_method_control`` / ``before_hypothesis_control``) raises ``InterruptExecution``
   with the reason, so the journal ends ``interrupted``. Rollbacks still run when the rollback
   strategy plays them. With ``stop_immediately: true`` it also sends Chaos Toolkit's graceful
   exit signal (``chaoslib.exit.exit_gracefully``, SIGUSR1) so a long activity or pause is cut
   short too.

**From monitoring** (``prometheus_url``; ``chaosgenesys.controls.promql``,
docs/observability.md): the same two signals are also read from a Prometheus server by PromQL
(``api_p99_query``, in seconds; ``websocket_error_rate_query``, a fraction), each judged with
the same limits and windows; either source breaching trips the switch. ``run_samples: false``
leaves Prometheus the only source. When Prometheus does not answer or rejects a query the
switch is *blind* (WARNING, ``blind`` in the journal) and ``when_blind`` (``stop``, default
when Prometheus is the only source; ``continue``, default alongside the run's own samples)
says whether it stops the run once blind for the shorter window. A query Prometheus rejects
at arming refuses the run, naming the argument.

After the experiment (``after_experiment_control``) and on interruption (``cleanup_control``)
it stops the thread and reverts every fault of this run again (idempotent; other runs' faults
are left alone here too). What it saw and did is added to
the journal under ``experiment.extensions`` as ``{"name": "chaosgenesys-killswitch",
"tripped": ..., "reason": ..., "reverted": [...], "checks": ..., "peaks": {"api_p99_ms",
"websocket_error_rate"}, "last_sample": {...}, "reverted_after": [...]}``; in Python,
:func:`status`. Bad arguments refuse the run (``InterruptExecution`` naming the argument):
a chaos run without its kill switch must not start.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_bool, require_number
from chaosgenesys.controls.journal import add_extension

__all__ = [
    "Thresholds",
    "Watcher",
    "after_experiment_control",
    "before_activity_control",
    "before_experiment_control",
    "before_hypothesis_control",
    "before_method_control",
    "before_rollback_control",
    "cleanup_control",
    "revert_everything",
    "status",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-killswitch"
_NUMBERS = (
    "max_api_p99_ms",
    "api_window_seconds",
    "max_websocket_error_rate",
    "websocket_window_seconds",
    "check_interval",
)
_FLAGS = ("stop_immediately", "clear_sandbox_faults")


@dataclass(frozen=True)
class Thresholds:
    """The kill switch's limits (the guide's defaults)."""

    max_api_p99_ms: float = 2000.0
    api_window_seconds: float = 30.0
    max_websocket_error_rate: float = 0.05
    websocket_window_seconds: float = 10.0
    check_interval: float = 1.0

    def to_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in _NUMBERS}


#: The thresholds may come from the configuration, where a value read from the environment is
#: text: a number written as text is read as one.
_number = functools.partial(require_number, numeric_text=True)


def _thresholds(**values: Any) -> Thresholds:
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
class _Signal:
    """One watched signal: since when it has been over its limit (None: it is not)."""

    window: float
    over_since: float | None = None

    #: With no data at a check (None), keep the last verdict instead of resetting.
    keep_without_data: bool = False

    def update(self, over: bool | None, now: float) -> bool:
        """Feed one check (None: no data, which resets unless ``keep_without_data``); True when
        breached for the window."""
        if over is None and self.keep_without_data:
            if self.over_since is None:
                return False
            return now - self.over_since >= self.window
        if not over:
            self.over_since = None
            return False
        if self.over_since is None:
            self.over_since = now
        return now - self.over_since >= self.window


@dataclass
class _AgentView:
    """The last ``disconnects`` counter seen per (run, user)."""

    disconnects: dict[tuple[str, str], int] = field(default_factory=dict)


def _api_sample(
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


def _websocket_sample(
    view: _AgentView,
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


def revert_everything(
    configuration: Configuration = None, clear_sandbox_faults: bool = False
) -> list[dict[str, Any]]:
    """Revert every fault of this run and clear sandbox faults; one entry per thing reverted.

    The run is this process and the processes it started (``registry.revert_all``'s default
    scope): another run's faults in a shared registry directory are left alone. Never raises:
    a failure is an entry with ``status: failed`` (and logged at ERROR).
    """
    from chaosgenesys.faults.registry import revert_all

    results: list[dict[str, Any]] = []
    try:
        results.extend(revert_all(scope="run"))
    except Exception as error:  # the registry itself unreadable: say so, go on
        logger.error("Kill switch: could not revert the recorded faults: %s", error)
        results.append({"id": None, "kind": "registry", "status": "failed", "error": str(error)})
    from chaosgenesys.controls.sandbox import running_sandbox

    sandbox = running_sandbox()
    try:
        if sandbox is not None:
            cleared = sandbox.clear_faults()
        elif clear_sandbox_faults:
            from chaosgenesys.sandbox.actions import clear_sandbox_faults as clear

            cleared = int(clear(configuration).get("cleared") or 0)
        else:
            cleared = 0
    except Exception as error:
        logger.error("Kill switch: could not clear the sandbox faults: %s", error)
        results.append({"id": None, "kind": "sandbox", "status": "failed", "error": str(error)})
    else:
        if cleared:
            results.append(
                {
                    "id": None,
                    "kind": "sandbox",
                    "description": f"{cleared} sandbox server-side fault(s)",
                    "status": "reverted",
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
        self._api = _Signal(thresholds.api_window_seconds, keep_without_data=True)
        #: The last API sample that had calls (the verdict a check without calls keeps).
        self._api_judged: dict[str, Any] = {}
        self._ws = _Signal(thresholds.websocket_window_seconds)
        self._agents = _AgentView()
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
        api = _api_sample(
            self.started,
            limits.api_window_seconds,
            limits.max_api_p99_ms,
            agents,
            self._browser_calls,
        )
        ws = _websocket_sample(self._agents, limits.max_websocket_error_rate, agents, pages)
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
                "last_sample": dict(self.last_sample),
                "run_samples": self.run_samples,
                **(
                    {"prometheus": self.prometheus.report(), "blind": self.prometheus.blind}
                    if self.prometheus is not None
                    else {}
                ),
            }


_lock = threading.Lock()
_watcher: Watcher | None = None
_in_rollbacks = False
_final: list[dict[str, Any]] = []
_last_report: dict[str, Any] | None = None


def before_experiment_control(
    context: Any,
    max_api_p99_ms: float = 2000,
    api_window_seconds: float = 30,
    max_websocket_error_rate: float = 0.05,
    websocket_window_seconds: float = 10,
    check_interval: float = 1.0,
    stop_immediately: bool = False,
    clear_sandbox_faults: bool = False,
    prometheus_url: str | None = None,
    api_p99_query: str | None = None,
    websocket_error_rate_query: str | None = None,
    when_blind: str | None = None,
    run_samples: bool | None = None,
    prometheus_timeout: float | None = None,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **kwargs: Any,
) -> None:
    """Start watching (a background thread); bad arguments refuse the run."""
    global _watcher, _in_rollbacks, _final
    try:
        thresholds = _thresholds(
            max_api_p99_ms=max_api_p99_ms,
            api_window_seconds=api_window_seconds,
            max_websocket_error_rate=max_websocket_error_rate,
            websocket_window_seconds=websocket_window_seconds,
            check_interval=check_interval,
        )
        immediate = require_bool("stop_immediately", stop_immediately)
        clear = require_bool("clear_sandbox_faults", clear_sandbox_faults)
        prometheus = _prometheus_source(
            prometheus_url=prometheus_url,
            api_p99_query=api_p99_query,
            websocket_error_rate_query=websocket_error_rate_query,
            when_blind=when_blind,
            run_samples=run_samples,
            prometheus_timeout=prometheus_timeout,
        )
        if prometheus is not None:
            prometheus.check_queries()  # an invalid query refuses the run; no answer: blind
    except ActivityFailed as error:
        raise InterruptExecution(f"killswitch control: {error}") from None
    watcher = Watcher(thresholds, configuration, immediate, clear, prometheus)
    with _lock:
        previous, _watcher = _watcher, watcher
        _in_rollbacks, _final = False, []
    if previous is not None:
        previous.stop()
    watcher.start()
    logger.info(
        "Kill switch armed: API p99 > %g ms for %g s, WebSocket error rate > %g%% for %g s "
        "(checked every %g s)",
        thresholds.max_api_p99_ms,
        thresholds.api_window_seconds,
        thresholds.max_websocket_error_rate * 100,
        thresholds.websocket_window_seconds,
        thresholds.check_interval,
    )
    if prometheus is not None:
        logger.info(
            "Kill switch: also reading Prometheus at %s (%s; when blind: %s)",
            prometheus.report()["url"],
            "with the run's own samples" if prometheus.run_samples else "its only source",
            prometheus.when_blind,
        )


def _prometheus_source(**arguments: Any) -> Any:
    """``chaosgenesys.controls.promql.PrometheusSource`` (None without the arguments); its
    module only imported when an argument is given."""
    if all(value is None for value in arguments.values()):
        return None
    from chaosgenesys.controls.promql import source_from_arguments

    return source_from_arguments(arguments)


def _interrupt_if_tripped(where: str) -> None:
    watcher = _watcher
    if watcher is None or watcher.reason is None or _in_rollbacks:
        return
    raise InterruptExecution(f"{watcher.reason}; the run stops {where}")


def before_activity_control(context: Any, **kwargs: Any) -> None:
    """Stop the run before the next activity once the switch has tripped."""
    name = context.get("name") if isinstance(context, dict) else None
    _interrupt_if_tripped(f"before activity {name!r}" if name else "before the next activity")


def before_method_control(context: Any, **kwargs: Any) -> None:
    """Stop the run before the method once the switch has tripped."""
    _interrupt_if_tripped("before the method")


def before_hypothesis_control(context: Any, **kwargs: Any) -> None:
    """Stop the run before the steady-state hypothesis once the switch has tripped."""
    _interrupt_if_tripped("before the steady-state hypothesis")


def before_rollback_control(context: Any, **kwargs: Any) -> None:
    """Rollbacks undo faults: they run (when the strategy plays them) even after a trip."""
    global _in_rollbacks
    with _lock:
        _in_rollbacks = True


def _disarm(configuration: Configuration = None) -> dict[str, Any] | None:
    """Stop the thread, revert everything (idempotent); the watcher's report, if it ran."""
    global _watcher, _final
    with _lock:
        watcher, _watcher = _watcher, None
    if watcher is not None:
        watcher.stop()
    clear = watcher.clear_sandbox_faults if watcher is not None else False
    reverted = revert_everything(
        watcher.configuration if watcher is not None else configuration, clear
    )
    done = [r for r in reverted if r.get("status") in ("reverted", "gone")]
    if done:
        logger.info("Kill switch: %d fault(s) reverted after the experiment", len(done))
    with _lock:
        _final = reverted
    return watcher.report() if watcher is not None else None


def after_experiment_control(
    context: Any, state: Any = None, configuration: Configuration = None, **kwargs: Any
) -> None:
    """Stop watching, revert every fault, add the kill switch's report to the journal."""
    global _last_report
    report = _disarm(configuration)
    if report is None:
        return
    report["reverted_after"] = list(_final)
    with _lock:
        _last_report = report
    add_extension(state, report)


def cleanup_control() -> None:
    """Chaos Toolkit calls this even on interruption: stop watching, revert every fault."""
    global _last_report
    report = _disarm()
    if report is not None:
        report["reverted_after"] = list(_final)
        with _lock:
            _last_report = report


def status() -> dict[str, Any] | None:
    """The running watcher's report, else the last run's (``None`` if none ran here)."""
    watcher = _watcher
    if watcher is not None:
        return watcher.report()
    with _lock:
        return None if _last_report is None else dict(_last_report)


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: the arguments that are not ``${...}`` substitutions are well formed."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("killswitch control: arguments must be a mapping")
    from chaosgenesys.controls.promql import ARGUMENTS as PROMETHEUS

    unknown = set(arguments) - set(_NUMBERS) - set(_FLAGS) - set(PROMETHEUS)
    if unknown:
        raise InvalidControl(
            f"killswitch control: unknown argument(s) {', '.join(sorted(unknown))}"
        )
    values: dict[str, Any] = dict(Thresholds().to_dict())
    for name in _NUMBERS:
        if name in arguments and "${" not in str(arguments[name]):
            values[name] = arguments[name]
    try:
        _thresholds(**values)
        for name in _FLAGS:
            if name in arguments and "${" not in str(arguments[name]):
                require_bool(name, arguments[name])
        given = {
            name: arguments[name]
            for name in PROMETHEUS
            if name in arguments and "${" not in str(arguments[name])
        }
        if "prometheus_url" in arguments and "prometheus_url" not in given:
            given["prometheus_url"] = "http://substituted.invalid"  # ${...}: known at run time
        _prometheus_source(**given)
    except ActivityFailed as error:
        raise InvalidControl(f"killswitch control: {error}") from None
