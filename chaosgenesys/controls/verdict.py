"""Chaos Toolkit control: a fault that never applied is never a pass.

Chaos Toolkit's own rule is that a failed action does not fail the run: when an action of the
method raises (``ActivityFailed``), it logs the error, records the activity as ``failed`` in the
journal and goes on; if the steady state then holds, the run ends ``completed`` and ``chaos
run`` exits 0. For a chaos experiment that is a false pass: on a kernel without ``sch_netem``,
``add_latency`` fails, nothing is degraded, and the hypothesis holds because nothing happened.
Declare this control (every example does) and such a run fails instead::

    "controls": [
      {
        "name": "chaosgenesys-verdict",
        "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}
      }
    ]

What it does:

* **Before anything runs** (``before_experiment_control``) it checks the types of the arguments
  given to chaosgenesys activities (``chaosgenesys.experiment_arguments``, after substitution):
  ``"delay_ms": "5s"`` refuses the run with ``InterruptExecution`` naming the activity, the
  argument and the value; the journal ends ``interrupted`` and nothing was injected. The same
  check runs at ``chaos validate`` time (``validate_control``), with the experiment's own
  configuration values.
* **During the run** (``after_activity_control``) it notes every *action* of the method that
  failed (and every rollback action that failed: a fault may still be in force) with its error,
  and logs at ERROR at once that the run will fail.
* **A steady state that did not hold before the method**: Chaos Toolkit ends that run
  ``completed``, not deviated, exit 0, although the method never ran. The control fails it too:
  nothing was tested.
* **After the hypothesis** (``after_hypothesis_control``) it logs each probe that was not within
  its tolerance with the value it observed and the tolerance it was held to.
* **At the end** (``after_experiment_control``, which Chaos Toolkit calls after the rollbacks and
  before it writes the journal) a run that would have ended ``completed`` with a failed method or
  rollback action ends ``failed`` instead, so ``chaos run`` exits 1, and the journal's
  ``experiment.extensions`` gets ``{"name": "chaosgenesys-verdict", "failed_actions":
  [{"name", "phase": "method"|"rollback", "module", "func", "error"}],
  "steady_state_before_met": false|null, "argument_problems": [...],
  "deviations": [{"name", "observed", "tolerance"}], "status_changed": true|false}``, plus
  ``"protocol"`` (the baseline, injection and recovery figures and the time to recover, also
  logged) when the run used ``chaosgenesys.protocol.probes``, and ``"desktops"``: the figures
  of this run's synthetic desktops (those stopped during the run included: their status files
  keep their last figures) and of its browser observers
  (reconnects, longest reconnect, seconds off queue or disconnected, zombie seconds, logged
  out, interactions lost, consistency violations). ``chaosgenesys verdict journal.json`` reads
  them back in a few lines.
  Chaos Toolkit has already logged "Experiment ended with status: completed" by then; the
  control's ERROR line after it says what changed and why.
* **Last** (``cleanup_control``, once every control has journaled its part) it logs the run's
  verdict in a few lines: what ``chaosgenesys verdict journal.json`` prints (INFO for a pass,
  ERROR otherwise).

Arguments (all optional): ``ignore`` (names of method actions that are allowed to fail, e.g. an
action the experiment expects to be refused), ``check_arguments`` (default true).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl

from chaosgenesys.arguments import require_bool
from chaosgenesys.controls.journal import add_extension

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_hypothesis_control",
    "after_method_control",
    "after_rollback_control",
    "before_experiment_control",
    "before_method_control",
    "before_rollback_control",
    "cleanup_control",
    "outcome",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-verdict"
ARGUMENTS = frozenset({"ignore", "check_arguments"})

_lock = threading.Lock()
_phase = ""
_failed: list[dict[str, Any]] = []
_deviations: list[dict[str, Any]] = []
_argument_problems: list[str] = []
#: The journal of the run that just ended, for the summary logged in ``cleanup_control``.
_journal: dict[str, Any] | None = None


def _ignored(ignore: Any) -> set[str]:
    if ignore is None:
        return set()
    if isinstance(ignore, str):
        return {ignore}
    if isinstance(ignore, list) and all(isinstance(item, str) for item in ignore):
        return set(ignore)
    raise ActivityFailed(f"ignore must be a list of activity names, got {ignore!r}")


def _check_own(ignore: Any, check_arguments: Any) -> tuple[set[str], bool]:
    try:
        return _ignored(ignore), require_bool("check_arguments", check_arguments)
    except ActivityFailed as error:
        raise InterruptExecution(f"verdict control: {error}") from None


def _error_of(run: dict[str, Any]) -> str:
    """The last line of the activity's exception, as Chaos Toolkit recorded it."""
    lines = run.get("exception") or []
    text = "".join(str(line) for line in lines).strip()
    return text.splitlines()[-1] if text else "failed"


def before_experiment_control(
    context: Any,
    ignore: list[str] | None = None,
    check_arguments: bool = True,
    configuration: Any = None,
    secrets: Any = None,
    **kwargs: Any,
) -> None:
    """Reset, then refuse the run (``InterruptExecution``) if an argument has the wrong type."""
    global _phase
    _, check = _check_own(ignore, check_arguments)
    with _lock:
        _phase = ""
        _failed.clear()
        _deviations.clear()
        _argument_problems.clear()
    from chaosgenesys.progress import watch_pauses

    phases = sys.modules.get("chaosgenesys.protocol.phases")
    if phases is not None:  # a protocol of an earlier run in this process: not this one's
        phases.end()
    watch_pauses()  # progress lines during Chaos Toolkit's own pauses, in a terminal
    if not check:
        return
    from chaosgenesys.experiment_arguments import argument_problems

    problems = argument_problems(context, configuration or {}, secrets or {})
    if problems:
        with _lock:
            _argument_problems.extend(problems)
        raise InterruptExecution(
            "verdict control: refusing to run, nothing was injected; " + "; ".join(problems)
        )


def _enter(phase: str) -> None:
    """The part of the run the next activities belong to: method, rollback or neither."""
    global _phase
    with _lock:
        _phase = phase


def before_method_control(context: Any, **kwargs: Any) -> None:
    _enter("method")


def after_method_control(context: Any, **kwargs: Any) -> None:
    _enter("")


def before_rollback_control(context: Any, **kwargs: Any) -> None:
    _enter("rollback")


def after_rollback_control(context: Any, **kwargs: Any) -> None:
    _enter("")


def after_activity_control(
    context: Any, state: Any = None, ignore: list[str] | None = None, **kwargs: Any
) -> None:
    """Note a failed action of the method or of the rollbacks."""
    if not isinstance(context, dict) or not isinstance(state, dict):
        return
    if context.get("type") != "action" or state.get("status") != "failed":
        return
    name = str(context.get("name"))
    with _lock:
        phase = _phase
    if not phase:
        return
    try:
        ignored = _ignored(ignore)
    except ActivityFailed:
        ignored = set()
    if phase == "method" and name in ignored:
        logger.info("Verdict: action %r failed, and is ignored (control argument ignore)", name)
        return
    provider = context.get("provider")
    if not isinstance(provider, dict):
        provider = {}
    entry = {
        "name": name,
        "phase": phase,
        "module": provider.get("module"),
        "func": provider.get("func"),
        "error": _error_of(state),
    }
    with _lock:
        _failed.append(entry)
    what = "never applied" if phase == "method" else "did not revert its fault"
    logger.error(
        "Verdict: %s action %r %s (%s): the run will end failed", phase, name, what, entry["error"]
    )


def after_hypothesis_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Log every probe of the hypothesis outside its tolerance with what it observed."""
    if not isinstance(state, dict):
        return
    for run in state.get("probes") or []:
        if not isinstance(run, dict) or run.get("tolerance_met", True):
            continue
        activity = run.get("activity") or {}
        entry = {
            "name": activity.get("name"),
            "observed": run.get("output"),
            "tolerance": activity.get("tolerance"),
        }
        if run.get("status") == "failed":
            entry["error"] = _error_of(run)
        with _lock:
            _deviations.append(entry)
        logger.error(
            "Verdict: probe %r is outside its tolerance: observed %s, tolerance %s%s",
            entry["name"],
            _short(entry["observed"]),
            _short(entry["tolerance"]),
            f" (the probe failed: {entry['error']})" if "error" in entry else "",
        )


def _short(value: Any) -> str:
    import json

    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 300 else text[:297] + "..."


def _steady_state_missed_before(journal: dict[str, Any]) -> bool:
    """Chaos Toolkit ends such a run ``completed``, not deviated: the method never ran."""
    before = (journal.get("steady_states") or {}).get("before")
    return isinstance(before, dict) and before.get("steady_state_met") is False


def after_experiment_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Fail a would-be ``completed`` run whose method or rollback actions failed, or whose
    steady state did not hold before the method (nothing was tested); journal it."""
    global _phase
    with _lock:
        _phase = ""
        failed = list(_failed)
        entry: dict[str, Any] = {
            "name": EXTENSION,
            "failed_actions": failed,
            "steady_state_before_met": None,
            "argument_problems": list(_argument_problems),
            "deviations": list(_deviations),
            "status_changed": False,
        }
    if not isinstance(state, dict):
        return
    protocol = _protocol_outcome()
    if protocol is not None:
        entry["protocol"] = protocol
    desktops = _desktops()
    if desktops:
        entry["desktops"] = desktops
    reasons = [f"{item['phase']} action {item['name']!r}: {item['error']}" for item in failed]
    if _steady_state_missed_before(state):
        entry["steady_state_before_met"] = False
        reasons.append(
            "the steady state did not hold before the method, so no fault was injected and "
            "nothing was tested"
        )
    if reasons and state.get("status") == "completed":
        state["status"] = "failed"
        entry["status_changed"] = True
        logger.error("Verdict: the run FAILED, not completed: %s", "; ".join(reasons))
    add_extension(state, entry)
    global _journal
    with _lock:
        _journal = state


def cleanup_control() -> None:
    """The run's verdict, logged once every control has journaled its part (Chaos Toolkit
    calls this after every control's ``after_experiment_control``): what ``chaosgenesys verdict
    journal.json`` prints."""
    global _journal
    from chaosgenesys.progress import unwatch_pauses

    unwatch_pauses()
    with _lock:
        journal, _journal = _journal, None
    if journal is None:
        return
    try:
        from chaosgenesys.results.verdict import render, summarize

        summary = summarize(journal)
        text = render(summary)
    except Exception:  # the summary must never cost the run
        logger.warning("Verdict: the summary could not be written", exc_info=True)
        return
    (logger.info if summary["passed"] else logger.error)(
        "Verdict of the run:\n%s", "\n".join("    " + line for line in text.splitlines())
    )


def _figure_line(name: str, figures: dict[str, Any] | None) -> str:
    if not figures:
        return f"{name}: not measured"
    api = figures.get("api") or {}
    desktops = figures.get("desktops") or {}
    rate = api.get("error_rate")
    return (
        f"{name} {figures.get('seconds')} s: API p50 {api.get('p50_ms')} ms, p99 "
        f"{api.get('p99_ms')} ms over {api.get('calls')} call(s), error rate "
        f"{'n/a' if rate is None else f'{rate:.1%}'}; desktops dropped their socket "
        f"{desktops.get('disconnects')} time(s), reconnected {desktops.get('reconnects')}"
    )


def _desktops() -> dict[str, Any]:
    """The figures of this run's desktops, as the desktops measured them: ``{"synthetic":
    {user: {...}}, "browser": {observer id: {...}}, "api_latency": {...}}`` (empty parts left
    out). What could hold figures is looked up first, without importing its readers: a run
    without desktops pays for none of them."""
    from chaosgenesys.agent.runtime import agents_dir, observers_dir

    try:
        any_agents = any(agents_dir().iterdir())
        any_observers = any(observers_dir().iterdir())
    except OSError:
        any_agents = any_observers = True  # the readers will say what is wrong
    found: dict[str, Any] = {}
    for part, read, needed in (("synthetic", _synthetic_figures, any_agents),
                               ("browser", _browser_figures, any_observers)):
        if not needed:
            continue
        try:
            figures = read()
        except Exception:  # the figures must never cost the verdict
            logger.warning("Verdict: the desktops' figures could not be read", exc_info=True)
            continue
        if figures:
            found[part] = figures
    if not (any_agents or any_observers or "chaosgenesys.platform.metrics" in sys.modules
            or "chaosgenesys.protocol.phases" in sys.modules):
        return found  # no source of API calls: no desktop, no observer, no call of ours
    try:
        series = _api_latency_series()
    except Exception:  # the timeline must never cost the verdict
        logger.warning("Verdict: the API latency series could not be read", exc_info=True)
        series = None
    if series is not None:
        found["api_latency"] = series
    return found


def _synthetic_figures() -> dict[str, Any]:
    """Each synthetic desktop of this run, by user id."""
    from chaosgenesys.agent.this_run import agent_runs

    synthetic = {}
    for _, status in agent_runs():
        for user, figures in (status.get("agents") or {}).items():
            if not isinstance(figures, dict):
                continue
            latency = figures.get("reconnect_latency_ms") or {}
            synthetic[str(user)] = {
                "mode": figures.get("mode"),
                "reconnects": figures.get("reconnects"),
                "reconnect_max_ms": latency.get("max") if isinstance(latency, dict) else None,
                "longest_off_queue_s": figures.get("longest_off_queue_seconds"),
                "zombie_s": figures.get("zombie_seconds"),
                "logged_out": figures.get("logged_out"),
                "interactions_lost": figures.get("interactions_lost"),
                "consistency_violations": figures.get("consistency_violations"),
                # the timeline (chaosgenesys report): bounded by the agent's summary
                # (PATH_RECORDS_KEPT each)
                "connected": figures.get("connected"),
                "off_queue_stretches": list(figures.get("off_queue_stretches") or ()),
                "recent_reconnects": list(figures.get("recent_reconnects") or ()),
            }
    return synthetic


def _browser_figures() -> dict[str, Any]:
    """Each browser observer of this run, by observer id."""
    from pathlib import Path

    from chaosgenesys.browser.runs import run_observers, summary_of
    from chaosgenesys.browser.summary import read_events, socket_outages

    browser = {}
    for record in run_observers():
        events = read_events(Path(str(record["dir"])) / "events.jsonl")  # read once
        figures = summary_of(record, events=events)
        entry = {
            key: figures.get(key)
            for key in ("reconnects", "reconnect_max_ms", "disconnected_s", "zombie_s",
                        "api_calls", "api_errors", "api_p99_ms", "websocket_errors",
                        "ended", "disconnected_now")
        }
        # the timeline (chaosgenesys report): the page's socket outages, bounded
        # (OUTAGES_KEPT, the latest)
        entry.update(socket_outages(events))
        browser[str(record.get("id"))] = entry
    return browser


#: At most this many buckets per source in the journal's API latency series: a longer run
#: gets wider buckets (a 10-minute run keeps one per second).
MAX_LATENCY_BUCKETS = 1200


def _api_latency_series() -> dict[str, Any] | None:
    """This run's API calls over time, for the report's timeline, compactly: per source
    (``tooling``, ``desktop``, ``browser``) ``[sent, max_ms, calls, failed]`` for each bucket
    of ``bucket_seconds`` in which calls were *sent* (the protocol's rule: a call slowed by a
    fault shows inside the fault's window): when its slowest call was sent (epoch seconds),
    that call's latency, how many calls, how many failed. Read from the protocol's call
    collector when the run measured a baseline (it keeps every call from the baseline on),
    joined by the calls before it; otherwise from this process's platform client
    (``chaosgenesys.platform.metrics``), this run's synthetic desktops' status files (their
    last five minutes) and this run's browser observers' logs. ``None`` when the run made no
    call."""
    from chaosgenesys.agent.this_run import agent_runs
    from chaosgenesys.protocol import phases
    from chaosgenesys.protocol.calls import Call, CallCollector

    # every call the three sources still hold (the desktops' last five minutes), read once
    everything = CallCollector(since=0.0, desktops=agent_runs)
    everything.collect()
    held = everything.calls(float("-inf"), float("inf"))
    protocol = phases.current()
    chosen: list[Call] = held
    if protocol is not None:  # the collector's calls, joined by the tooling's and desktops' before
        since = protocol.collector.started
        chosen = protocol.collector.calls(0.0, float("inf")) + [
            call for call in held if call.at < since and call.source != "browser"
        ]
    calls = [(c.began, c.latency_ms, bool(c.failed), c.source) for c in chosen]
    if not calls:
        return None
    first = min(call[0] for call in calls)
    span = max(call[0] for call in calls) - first
    bucket = max(1, -(-int(span) // MAX_LATENCY_BUCKETS))
    buckets: dict[str, dict[int, list[float]]] = {}  # [sent, max_ms, calls, failed]
    for sent, latency, failed, source in calls:
        slot = buckets.setdefault(source, {}).setdefault(int(sent // bucket), [sent, -1.0, 0, 0])
        if latency > slot[1]:
            slot[0], slot[1] = sent, latency
        slot[2] += 1
        slot[3] += int(failed)
    return {
        "bucket_seconds": bucket,
        "from": "protocol" if protocol is not None else "run",
        "sources": {
            source: [[round(value[0], 2), round(value[1], 1), int(value[2]), int(value[3])]
                     for _, value in sorted(seconds.items())]
            for source, seconds in sorted(buckets.items())
        },
    }


def _protocol_outcome() -> dict[str, Any] | None:
    """The protocol's figures (``chaosgenesys.protocol``), logged in a few lines; ``None`` when
    no protocol probe ran. Its call collector stops here."""
    if "chaosgenesys.protocol.phases" not in sys.modules:
        return None  # no protocol probe ran in this process
    from chaosgenesys.protocol import phases

    try:
        found = phases.summary()
    except Exception:  # the figures must never cost the verdict
        logger.warning("Verdict: the protocol's figures could not be read", exc_info=True)
        return None
    finally:
        protocol = phases.current()
        if protocol is not None:
            protocol.collector.stop()
    if found is None:
        return None
    for name in ("baseline", "injection", "recovery"):
        if name in found["phases"]:
            logger.info("Verdict: protocol %s", _figure_line(name, found["phases"][name]))
    recovery = found.get("time_to_recover")
    if recovery:
        if recovery.get("recovered"):
            logger.info("Verdict: time to recover %s s", recovery.get("seconds"))
        else:
            logger.error(
                "Verdict: the steady state did not come back within %s s of the fault's "
                "removal: %s",
                recovery.get("timeout"),
                "; ".join(f"{item['user_id']}: {item['why']}" for item in
                          recovery.get("not_back") or []),
            )
    return found


def outcome() -> dict[str, Any]:
    """What the control has noted in this process: failed actions, deviations, problems."""
    with _lock:
        return {
            "failed_actions": list(_failed),
            "deviations": list(_deviations),
            "argument_problems": list(_argument_problems),
        }


def _experiment_being_validated() -> Any:
    """The experiment ``chaos validate`` is checking (chaoslib hands a control only its own
    block): the ``experiment`` argument of ``chaoslib.control.validate_controls`` up the stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "validate_controls":
            candidate = frame.f_locals.get("experiment")
            if isinstance(candidate, dict):
                return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: the control's arguments, then the types of chaosgenesys activities'
    arguments (the values written in the experiment; placeholders are checked at run time)."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("verdict control: arguments must be a mapping")
    unknown = set(arguments) - ARGUMENTS
    if unknown:
        raise InvalidControl(f"verdict control: unknown argument(s) {', '.join(sorted(unknown))}")
    try:
        _ignored(arguments.get("ignore"))
        check = require_bool("check_arguments", arguments.get("check_arguments", True))
    except ActivityFailed as error:
        raise InvalidControl(f"verdict control: {error}") from None
    if not check:
        return
    experiment = _experiment_being_validated()
    if experiment is None:
        return
    from chaosgenesys.experiment_arguments import argument_problems

    problems = argument_problems(experiment)
    if problems:
        raise InvalidControl("verdict control: " + "; ".join(problems))
