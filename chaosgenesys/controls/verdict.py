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
  failed (and every rollback action that failed: a fault may still be in force) with its error
  (the exception's name said once), and logs at ERROR at once that the run will fail; and the
  ``duration`` an action resolved from a ``${placeholder}``.
* **A steady state that did not hold before the method**: Chaos Toolkit ends that run
  ``completed``, not deviated, exit 0, although the method never ran. The control fails it too:
  nothing was tested.
* **After the hypothesis** (``after_hypothesis_control``) it logs each probe that was not within
  its tolerance with the value it observed (the field a ``target`` or a plain JSONPath names,
  not the whole output) and the tolerance it was held to.
* **At the end** (``after_experiment_control``, which Chaos Toolkit calls after the rollbacks and
  before it writes the journal) a run that would have ended ``completed`` with a failed method or
  rollback action ends ``failed`` instead, so ``chaos run`` exits 1, and the journal's
  ``experiment.extensions`` gets ``{"name": "chaosgenesys-verdict", "failed_actions":
  [{"name", "phase": "method"|"rollback", "module", "func", "error"}],
  "steady_state_before_met": false|null, "argument_problems": [...],
  "deviations": [{"name", "observed", "tolerance"}], "durations": [{"name", "start",
  "duration"}], "status_changed": true|false}`` (``durations``: the ``duration`` each action
  given one as a ``${placeholder}`` resolved from the run's configuration, ``--var`` applied,
  which the journal records nowhere else), plus
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

This module is the control (its hooks and what it notes during the run); the figures it
journals under ``protocol`` and ``desktops`` are read by
:mod:`chaosgenesys.controls.verdict_figures`.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl

from chaosgenesys.arguments import require_bool
from chaosgenesys.controls.journal import add_extension
from chaosgenesys.controls.verdict_figures import desktop_figures, protocol_outcome
from chaosgenesys.results.verdict import error_of, observed_words

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
#: The ``duration`` each action run resolved from the run's configuration (``--var`` applied):
#: the journal keeps the argument as written and the file's configuration only.
_durations: list[dict[str, Any]] = []
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


def _note_duration(context: dict[str, Any], state: dict[str, Any], configuration: Any) -> None:
    """An action whose ``duration`` is a placeholder: note the value this run resolved it to
    (what ``chaosgenesys verdict`` takes for the fault's window when the action's output does
    not say)."""
    provider = context.get("provider")
    arguments = provider.get("arguments") if isinstance(provider, dict) else None
    written = arguments.get("duration") if isinstance(arguments, dict) else None
    if not isinstance(written, str) or "${" not in written or not configuration:
        return
    from chaoslib import substitute

    try:
        value = substitute(written, configuration, {})
    except Exception:  # a value the verdict cannot read is no reason to touch the run
        return
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return
    if isinstance(value, int | float) and not isinstance(value, bool):
        with _lock:
            _durations.append({"name": context.get("name"), "start": state.get("start"),
                               "duration": value})


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
        _durations.clear()
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
    context: Any,
    state: Any = None,
    ignore: list[str] | None = None,
    configuration: Any = None,
    **kwargs: Any,
) -> None:
    """Note a failed action of the method or of the rollbacks, and the ``duration`` an
    action resolved from the run's configuration."""
    if not isinstance(context, dict) or not isinstance(state, dict):
        return
    if context.get("type") != "action":
        return
    _note_duration(context, state, configuration)
    if state.get("status") != "failed":
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
        "error": error_of(state),
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
            entry["error"] = error_of(run)
        with _lock:
            _deviations.append(entry)
        logger.error(
            "Verdict: probe %r is outside its tolerance: observed %s, tolerance %s%s",
            entry["name"],
            observed_words(entry["observed"], entry["tolerance"], 300),
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
            "durations": list(_durations),
            "status_changed": False,
        }
    if not isinstance(state, dict):
        return
    protocol = protocol_outcome()
    if protocol is not None:
        entry["protocol"] = protocol
    desktops = desktop_figures()
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
