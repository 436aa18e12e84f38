"""Chaos Toolkit control: refuse to run unless the chaos queue is isolated.

The resilience guide's first trap is uncontrolled production testing: faults belong on a
dedicated "Chaos Queue" whose only members are test agents and where no customer conversation
waits or is being handled. Declare this control and the experiment does not start otherwise::

    "controls": [
      {
        "name": "chaos-queue-safeguard",
        "provider": {
          "type": "python",
          "module": "chaosgenesys.controls.safeguard",
          "arguments": {
            "queue_id": "${chaos_queue}",
            "user_ids": ["${agent_1}", "${agent_2}"]
          }
        }
      }
    ]

Before the experiment (``before_experiment_control``: before the steady state is first checked
and before any method activity) it reads the queue's members
(``chaosgenesys.routing.probes.queue_members``) and live observations
(``chaosgenesys.routing.probes.queue_observations``): the same criteria as
``chaosgenesys.routing.probes.queue_is_isolated``. If a member is not one of ``user_ids`` or a
customer conversation is waiting (``oWaiting``), alerting (``oAlerting``) or being handled
(``oInteracting``) in the queue, it raises ``InterruptExecution`` saying exactly which members
and how many conversations (Chaos Toolkit logs it at CRITICAL): the journal ends
``interrupted`` and nothing ran. When the queue
cannot be read (unreachable platform, unknown queue), it refuses too: it fails closed.

``allow_waiting`` (default false) tolerates conversations *waiting* in the queue (test calls
the experiment set up itself); alerting and interacting ones still refuse.
``check_before_activities`` (default false) repeats the check before every method activity, so
real customers routed into the queue mid-run stop the run at the next activity (leave it off
when the experiment itself puts calls on the test agents).

Bad arguments refuse the run as well, naming the argument. Control arguments are substituted
with the configuration and secrets before each check, so ``${chaos_queue}`` works. What the
control decided is added to the journal under ``experiment.extensions`` as
``{"name": "chaosgenesys-safeguard", ...}``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_bool, require_id, require_ids
from chaosgenesys.controls.journal import add_extension

__all__ = [
    "after_experiment_control",
    "after_method_control",
    "before_activity_control",
    "before_experiment_control",
    "before_method_control",
    "check_isolation",
    "cleanup_control",
    "last_check",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-safeguard"
#: Customer-conversation metrics that refuse the run (``oWaiting`` unless ``allow_waiting``).
TRAFFIC = (("oWaiting", "waiting"), ("oAlerting", "alerting"), ("oInteracting", "interacting"))

_lock = threading.Lock()
_in_method = False
_last: dict[str, Any] | None = None
_refusal: str | None = None


def _arguments(
    queue_id: Any, user_ids: Any, allow_waiting: Any, check_before_activities: Any
) -> tuple[str, list[str], bool, bool]:
    """Checked arguments; ``InterruptExecution`` naming the bad one (the run must not start)."""
    try:
        queue = require_id("queue_id", queue_id)
        users = require_ids("user_ids", user_ids)
        if not users:
            raise ActivityFailed("user_ids must name at least one test agent, got []")
        allow = require_bool("allow_waiting", allow_waiting)
        recheck = require_bool("check_before_activities", check_before_activities)
    except ActivityFailed as error:
        raise InterruptExecution(f"safeguard control: {error}") from None
    return queue, users, allow, recheck


def check_isolation(
    queue_id: str,
    user_ids: list[str],
    allow_waiting: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """What the safeguard sees: ``{"queue_id", "isolated", "outsiders": [{"user_id", "name"}],
    "conversations": {"waiting", "alerting", "interacting"}, "reasons": [...]}``.

    ``isolated`` is false when a member is not in ``user_ids`` or a customer conversation is
    alerting or interacting (or waiting, unless ``allow_waiting``); ``reasons`` says why.
    Platform errors propagate (``ActivityFailed``).
    """
    from chaosgenesys.routing.probes import queue_members, queue_observations

    allowed = set(user_ids)
    members = queue_members(queue_id, configuration=configuration, secrets=secrets)
    outsiders = [
        {"user_id": member.get("user_id"), "name": member.get("name")}
        for member in members
        if member.get("user_id") not in allowed
    ]
    metrics = queue_observations(queue_id, configuration=configuration, secrets=secrets)["metrics"]
    conversations = {label: int(metrics.get(name, 0) or 0) for name, label in TRAFFIC}
    reasons: list[str] = []
    if outsiders:
        shown = ", ".join(
            f"{o['name']} ({o['user_id']})" if o.get("name") else str(o["user_id"])
            for o in outsiders
        )
        reasons.append(
            f"{len(outsiders)} member(s) of the queue are not test agents (user_ids): {shown}"
        )
    blocking = {
        label: count
        for label, count in conversations.items()
        if count and not (label == "waiting" and allow_waiting)
    }
    if blocking:
        reasons.append(
            "customer conversations in the queue: "
            + ", ".join(f"{count} {label}" for label, count in blocking.items())
        )
    return {
        "queue_id": queue_id,
        "isolated": not reasons,
        "members": len(members),
        "outsiders": outsiders,
        "conversations": conversations,
        "allow_waiting": allow_waiting,
        "reasons": reasons,
    }


def _refuse_unless_isolated(
    when: str,
    queue_id: str,
    user_ids: list[str],
    allow_waiting: bool,
    configuration: Configuration,
    secrets: Secrets,
) -> None:
    global _last, _refusal
    try:
        result = check_isolation(queue_id, user_ids, allow_waiting, configuration, secrets)
    except ActivityFailed as error:
        reason = (
            f"safeguard control: cannot tell whether queue {queue_id} is isolated ({error}); "
            f"refusing to run {when}"
        )
        with _lock:
            _last, _refusal = {"queue_id": queue_id, "isolated": None, "error": str(error)}, reason
        raise InterruptExecution(reason) from None
    with _lock:
        _last = result
    if result["isolated"]:
        logger.info(
            "Safeguard: queue %s is isolated (%d member(s), all test agents, no customer "
            "conversation)",
            queue_id,
            result["members"],
        )
        return
    reason = (
        f"safeguard control: queue {queue_id} is not isolated, refusing to run {when}: "
        + "; ".join(result["reasons"])
    )
    with _lock:
        _refusal = reason
    raise InterruptExecution(reason)


def before_experiment_control(
    context: Any,
    queue_id: str = "",
    user_ids: list[str] | None = None,
    allow_waiting: bool = False,
    check_before_activities: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **kwargs: Any,
) -> None:
    """Refuse the run (``InterruptExecution``) unless the chaos queue is isolated."""
    global _in_method, _last, _refusal
    with _lock:
        _in_method, _last, _refusal = False, None, None
    queue, users, allow, _ = _arguments(queue_id, user_ids, allow_waiting, check_before_activities)
    _refuse_unless_isolated("the experiment", queue, users, allow, configuration, secrets)


def before_method_control(context: Any, **kwargs: Any) -> None:
    """The method starts: ``check_before_activities`` applies from now on."""
    global _in_method
    with _lock:
        _in_method = True


def after_method_control(context: Any, **kwargs: Any) -> None:
    """The method is over: activities after it (hypothesis, rollbacks) are not checked."""
    global _in_method
    with _lock:
        _in_method = False


def before_activity_control(
    context: Any,
    queue_id: str = "",
    user_ids: list[str] | None = None,
    allow_waiting: bool = False,
    check_before_activities: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
    **kwargs: Any,
) -> None:
    """With ``check_before_activities``, re-check before each method activity."""
    if not check_before_activities or not _in_method:
        return
    queue, users, allow, _ = _arguments(queue_id, user_ids, allow_waiting, check_before_activities)
    name = context.get("name") if isinstance(context, dict) else None
    _refuse_unless_isolated(
        f"activity {name!r}" if name else "the next activity",
        queue,
        users,
        allow,
        configuration,
        secrets,
    )


def after_experiment_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Record the safeguard's last check (and refusal, if any) in the journal's extensions."""
    global _in_method
    with _lock:
        _in_method = False
        entry = {"name": EXTENSION, "refused": _refusal, "last_check": _last}
    add_extension(state, entry)


def cleanup_control() -> None:
    """Nothing to revert: the safeguard changes nothing."""
    global _in_method
    with _lock:
        _in_method = False


def last_check() -> dict[str, Any]:
    """``{"refused": reason or None, "last_check": what the last check saw}`` in this process."""
    with _lock:
        return {"refused": _refusal, "last_check": _last}


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: the arguments that are not ``${...}`` substitutions are well formed."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("safeguard control: arguments must be a mapping")
    if "queue_id" not in arguments or "user_ids" not in arguments:
        raise InvalidControl(
            "safeguard control: the arguments queue_id (the chaos queue) and user_ids (the "
            "test agents) are required"
        )
    unknown = set(arguments) - {"queue_id", "user_ids", "allow_waiting", "check_before_activities"}
    if unknown:
        raise InvalidControl(f"safeguard control: unknown argument(s) {', '.join(sorted(unknown))}")
    checks: list[tuple[str, Any]] = [
        ("queue_id", lambda v: require_id("queue_id", v)),
        ("user_ids", lambda v: require_ids("user_ids", v)),
        ("allow_waiting", lambda v: require_bool("allow_waiting", v)),
        ("check_before_activities", lambda v: require_bool("check_before_activities", v)),
    ]
    for name, check in checks:
        if name not in arguments or "${" in str(arguments[name]):
            continue
        try:
            check(arguments[name])
        except ActivityFailed as error:
            raise InvalidControl(f"safeguard control: {error}") from None
