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
"websocket_error_rate"}, "last_sample": {...}, "reverted_after": [...], "refused": null}``;
in Python, :func:`status`. Each entry of ``reverted`` and ``reverted_after`` has ``at`` (epoch
seconds, when its revert was done) and the registry's ``id``, the ``fault_id`` (or ``id``) the
fault action answered; the sandbox's entry has ``fault_ids``, the server-side faults it removed:
the verdict ends those faults' windows there (docs/controls.md). Bad arguments refuse the run
(``InterruptExecution`` naming the argument): a chaos run without its kill switch must not
start, and the journal says why: ``{"name": "chaosgenesys-killswitch", "refused": reason,
"reverted_after": [...]}``.

This module is the control: its hooks, its arguments and the one watcher of the run. The
watcher and what a trip reverts are in :mod:`chaosgenesys.controls.killswitch_watcher`, the
thresholds, samples and windows in :mod:`chaosgenesys.controls.killswitch_signals`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_bool
from chaosgenesys.controls.journal import add_extension
from chaosgenesys.controls.killswitch_signals import NUMBERS, check_thresholds
from chaosgenesys.controls.killswitch_signals import Thresholds as Thresholds
from chaosgenesys.controls.killswitch_watcher import EXTENSION as EXTENSION
from chaosgenesys.controls.killswitch_watcher import Watcher as Watcher
from chaosgenesys.controls.killswitch_watcher import revert_everything as revert_everything

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

_FLAGS = ("stop_immediately", "clear_sandbox_faults")


_lock = threading.Lock()
_watcher: Watcher | None = None
_in_rollbacks = False
_final: list[dict[str, Any]] = []
_last_report: dict[str, Any] | None = None
#: Why this run's switch refused to arm (a bad argument), for the journal; None otherwise.
_refusal: str | None = None


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
    global _watcher, _in_rollbacks, _final, _refusal
    with _lock:
        _refusal = None
    try:
        thresholds = check_thresholds(
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
        reason = f"killswitch control: {error}"
        with _lock:
            _refusal = reason
        raise InterruptExecution(reason) from None
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
    """Stop watching, revert every fault, add the kill switch's report to the journal (or,
    when it refused to arm, why: ``{"name": "chaosgenesys-killswitch", "refused": reason}``)."""
    global _last_report
    report = _disarm(configuration)
    if report is None:
        with _lock:
            refused = _refusal
        if refused is not None:
            add_extension(state, {"name": EXTENSION, "refused": refused,
                                  "reverted_after": list(_final)})
        return
    report["refused"] = None
    report["reverted_after"] = list(_final)
    with _lock:
        _last_report = report
    add_extension(state, report)


def cleanup_control() -> None:
    """Chaos Toolkit calls this even on interruption: stop watching, revert every fault."""
    global _last_report, _refusal
    with _lock:
        _refusal = None  # journaled by now (after_experiment_control): not the next run's
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

    unknown = set(arguments) - set(NUMBERS) - set(_FLAGS) - set(PROMETHEUS)
    if unknown:
        raise InvalidControl(
            f"killswitch control: unknown argument(s) {', '.join(sorted(unknown))}"
        )
    values: dict[str, Any] = dict(Thresholds().to_dict())
    for name in NUMBERS:
        if name in arguments and "${" not in str(arguments[name]):
            values[name] = arguments[name]
    try:
        check_thresholds(**values)
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
