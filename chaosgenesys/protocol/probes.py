"""The guide's execution protocol as probes: baseline, time to recover, fault window vs baseline.

The guide's protocol is *baseline* (about 5 minutes of normal figures) → *injection* (30 s to
5 minutes) → *recovery* (remove the fault, measure the time to recover) → *verification*. An
experiment follows it with these probes in its method and hypothesis (``docs/protocol.md``
has the template):

1. ``measure_baseline`` first in the method: watches the run's API calls (the experiment's own,
   this run's synthetic desktops', this run's browser pages') and the desktops' reconnects for
   ``duration`` seconds, with the platform left alone, and keeps the figures (journal: its
   output, and the verdict control's ``protocol`` section).
2. the fault, held for its window; then the action that removes it.
3. ``time_to_recover`` right after the removal: from that moment until every agent is back
   (the API shows the expected presence, presence and routing status agree, the agent's
   synthetic desktop is connected and logged in) → seconds. The injection phase is the time
   from the baseline's end to this call.
4. the hypothesis after the method: ``recovery_within`` (the time to recover against a bound),
   ``compare_with_baseline`` (a figure of the injection or recovery phase against k x baseline),
   and the usual checks of the end state (presence, no interaction lost).

Figures of a phase (``protocol_figures`` returns them all)::

    {"phase": "baseline", "start": ISO, "end": ISO, "seconds": 300.0,
     "api": {"calls", "p50_ms", "p99_ms", "max_ms", "errors", "error_rate",
             "by_source": {"tooling", "desktop", "browser"}},
     "desktops": {"count", "disconnects", "reconnects", "reconnect_latency_max_ms",
                  "logged_out": [user ids], "interactions_lost"}}

``error_rate`` counts calls answered 400 or above, or not answered, among those whose status is
known (a browser page's calls give their latency only). Importing this module imports neither
aiohttp nor the platform client.
"""


import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import (
    normalise_presence,
    presence_names,
    require_bool,
    require_ids,
    require_number,
    require_text,
)
from chaosgenesys.protocol import phases

__all__ = [
    "compare_with_baseline",
    "measure_baseline",
    "protocol_figures",
    "recovery_within",
    "time_to_recover",
]

#: The longest baseline or recovery wait accepted (seconds).
MAX_SECONDS = 3600.0
MAX_AGENTS = 500
PHASES_COMPARED = ("injection", "recovery")


def _sample(user_ids: list[str], configuration: Configuration, secrets: Secrets) -> str | None:
    """One bulk read of the agents (an API call the baseline measures); its error, if any."""
    from chaosgenesys.users.probes import agents_state

    try:
        agents_state(user_ids, configuration, secrets)
    except ActivityFailed as error:
        return str(error)
    return None


def measure_baseline(
    duration: float = 300.0,
    user_ids: list[str] = [],  # noqa: B006 (never mutated; [] = no reads of its own)
    sample_interval: float = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Measure ``duration`` seconds of normal figures before any fault: the guide's baseline.

    Watches the API calls of the run (the experiment's own through the platform client, this
    run's synthetic desktops', this run's browser pages') and what the desktops count
    (disconnects, reconnects, logouts, interactions lost). With ``user_ids`` it also reads
    those agents every ``sample_interval`` seconds (one bulk read), so the baseline has the
    tooling's own view of the platform's latency even when the desktops run elsewhere (a
    workstation's browser). The guide says about 5 minutes (the default); scale it down for CI.
    A new baseline starts a new protocol. Returns the phase's figures (module docstring) plus
    ``sample_failures`` (bulk reads that failed: a baseline is meant to be healthy).

    ```json
    {"type": "probe", "name": "baseline",
     "provider": {"type": "python", "module": "chaosgenesys.protocol.probes",
                  "func": "measure_baseline",
                  "arguments": {"duration": 300, "user_ids": ["${agent_1}", "${agent_2}"]}}}
    ```
    """
    seconds = require_number("duration", duration, minimum=0.0, maximum=MAX_SECONDS,
                             exclusive_minimum=True)
    ids = []
    if user_ids not in (None, []):
        ids = require_ids("user_ids", user_ids, max_count=MAX_AGENTS)
    every = require_number("sample_interval", sample_interval, minimum=0.1, maximum=MAX_SECONDS)
    from chaosgenesys.progress import Progress

    protocol = phases.begin()
    started = protocol.open("baseline").start
    failures: list[str] = []
    deadline = started + seconds
    progress = Progress("baseline", total=seconds)

    def so_far() -> str:
        calls = protocol.collector.calls(started, time.time())
        return f"{len(calls)} call(s) so far, {len(failures)} failed read(s)"

    while True:
        if ids:
            error = _sample(ids, configuration, secrets)
            if error is not None:
                failures.append(error)
        left = deadline - time.time()
        if left <= 0:
            break
        progress.sleep(min(every if ids else left, left), so_far)
    result = dict(protocol.close("baseline"))
    result["sample_failures"] = len(failures)
    if failures:
        result["last_sample_failure"] = failures[-1]
    return result


def _desktops_of(user_ids: list[str]) -> dict[str, dict[str, Any]]:
    """This run's synthetic desktops of these users, by user id (the newest one)."""
    from chaosgenesys.protocol.calls import desktop_counters

    wanted = set(user_ids)
    return {
        entry["user_id"]: entry
        for entry in desktop_counters().values()
        if entry["user_id"] in wanted
    }


def _not_back(
    user_ids: list[str],
    wanted: set[str],
    check_desktops: bool,
    configuration: Configuration,
    secrets: Secrets,
) -> list[dict[str, str]]:
    """Who is not back yet, and why (empty: the steady state holds)."""
    from chaosgenesys.users.probes import agents_state

    try:
        state = agents_state(user_ids, configuration, secrets)
    except ActivityFailed as error:
        return [{"user_id": "*", "why": f"the API did not answer: {error}"}]
    missing: list[dict[str, str]] = []
    for agent in state["agents"]:
        presence, routing = agent.get("presence"), agent.get("routing_status")
        user = str(agent["user_id"])
        if not agent.get("found"):
            missing.append({"user_id": user, "why": "no such user"})
        elif not isinstance(presence, str) or normalise_presence(presence) not in wanted:
            missing.append({"user_id": user, "why": f"the API shows presence {presence}"})
        elif (normalise_presence(presence) == "onqueue") == (routing == "OFF_QUEUE"):
            missing.append(
                {"user_id": user,
                 "why": f"presence {presence} and routing status {routing} disagree"}
            )
    if check_desktops:
        for user, desktop in _desktops_of(user_ids).items():
            if desktop["logged_out"]:
                missing.append({"user_id": user, "why": "its desktop is logged out"})
            elif not desktop["connected"]:
                missing.append({"user_id": user, "why": "its desktop is not connected"})
    return missing


def time_to_recover(
    user_ids: list[str],
    expected_presence: str = "On Queue",
    timeout: float = 300.0,
    interval: float = 1.0,
    check_desktops: bool = True,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Seconds from the fault's removal (this call) until the steady state holds again.

    Call it right after the action that removes the fault. Every ``interval`` seconds, up to
    ``timeout``, it checks from outside the desktops, as the guide asks: each agent's presence
    is ``expected_presence`` (one, several comma-separated, or a list; any spelling; default
    On Queue) in the API,
    presence and routing status agree (one bulk read), and with ``check_desktops`` (default)
    each agent's synthetic desktop of this run, if it has one, is connected and logged in.
    Ends the protocol's injection phase (from the baseline's end to now) and measures the
    recovery phase. Returns ``{"recovered": bool, "seconds": s or null, "fault_removed_at",
    "recovered_at", "checks", "not_back": [{"user_id", "why"}] (at the last check),
    "timeout"}``; never raises for an agent that does not come back (``recovery_within`` in the
    hypothesis judges it), only for bad arguments.

    ```json
    {"type": "probe", "name": "time-to-recover",
     "provider": {"type": "python", "module": "chaosgenesys.protocol.probes",
                  "func": "time_to_recover",
                  "arguments": {"user_ids": ["${agent_1}", "${agent_2}"], "timeout": 300}}}
    ```
    """
    ids = require_ids("user_ids", user_ids, max_count=MAX_AGENTS)
    wanted = {normalise_presence(name) for name in presence_names("expected_presence",
                                                                 expected_presence)}
    bound = require_number("timeout", timeout, minimum=0.0, maximum=MAX_SECONDS)
    every = require_number("interval", interval, minimum=0.1, maximum=60.0)
    desktops = require_bool("check_desktops", check_desktops)
    protocol = phases.current(create=True)
    assert protocol is not None
    removed = time.time()
    if "injection" not in protocol.phases and "baseline" in protocol.phases:
        protocol.open("injection", after="baseline")
    if "injection" in protocol.phases and protocol.phases["injection"].end is None:
        protocol.close("injection", at=removed)
    protocol.open("recovery", at=removed)
    from chaosgenesys.progress import Progress

    checks = 0
    recovered_at: float | None = None
    not_back: list[dict[str, str]] = []
    progress = Progress("time to recover")

    def waiting_for() -> str:
        first = not_back[0] if not_back else {"user_id": "?", "why": "?"}
        return (f"{len({item['user_id'] for item in not_back})} agent(s) not back "
                f"({first['user_id']}: {first['why']})")

    while True:
        checks += 1
        not_back = _not_back(ids, wanted, desktops, configuration, secrets)
        now = time.time()
        if not not_back:
            recovered_at = now
            break
        if now - removed >= bound:
            break
        progress.sleep(min(every, max(0.0, removed + bound - now)), waiting_for)
    protocol.close("recovery", at=recovered_at if recovered_at is not None else time.time())
    result = {
        "recovered": recovered_at is not None,
        "seconds": None if recovered_at is None else round(recovered_at - removed, 3),
        "fault_removed_at": phases.iso(removed),
        "recovered_at": phases.iso(recovered_at),
        "checks": checks,
        "not_back": not_back,
        "timeout": bound,
    }
    protocol.recovery = result
    return result


def _protocol_or_fail(what: str) -> phases.Protocol:
    protocol = phases.current()
    if protocol is None or "baseline" not in protocol.phases:
        raise ActivityFailed(
            f"{what}: no baseline was measured in this run; put "
            "chaosgenesys.protocol.probes.measure_baseline first in the method"
        )
    return protocol


def compare_with_baseline(
    metric: str = "api_p99_ms",
    phase: str = "injection",
    max_ratio: float = 2.0,
    slack: float = 0.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Whether a figure of the fault window (or of the recovery) stays within ``max_ratio`` x
    its baseline value + ``slack``: "p99 under fault ≤ 3 x baseline".

    ``metric``: ``api_p50_ms``, ``api_p99_ms``, ``api_max_ms``, ``api_error_rate``,
    ``desktop_disconnects``, ``desktop_reconnects``, ``reconnect_latency_max_ms``. ``phase``:
    ``injection`` (from the baseline's end to the fault's removal; still open, it ends now) or
    ``recovery`` (measured by ``time_to_recover``). ``slack`` is added in the metric's own unit,
    for baselines near zero: an error rate of 0 allows ``slack`` (e.g. 0.05), a loopback p99 of
    3 ms allows ``max_ratio`` x 3 ms + ``slack``. Returns ``{"holds": bool, "metric", "phase",
    "baseline", "observed", "limit", "ratio", "baseline_calls", "phase_calls", "reason"}``;
    ``holds`` is false when the phase has no value for the metric (no API call in it): nothing
    shows it held. Refuses (``ActivityFailed``) without a baseline, or when the baseline has no
    value for the metric.

    ```json
    {"type": "probe", "name": "p99-under-fault-at-most-5x-baseline",
     "tolerance": {"type": "jsonpath", "path": "$.holds", "expect": true},
     "provider": {"type": "python", "module": "chaosgenesys.protocol.probes",
                  "func": "compare_with_baseline",
                  "arguments": {"metric": "api_p99_ms", "phase": "injection",
                                "max_ratio": 5, "slack": 50}}}
    ```
    """
    name = require_text("metric", metric)
    if name not in phases.METRICS:
        raise ActivityFailed(
            f"metric must be one of {', '.join(phases.METRICS)}, got {metric!r}"
        )
    which = require_text("phase", phase)
    if which not in PHASES_COMPARED:
        raise ActivityFailed(f"phase must be injection or recovery, got {phase!r}")
    ratio_bound = require_number("max_ratio", max_ratio, minimum=0.0)
    extra = require_number("slack", slack, minimum=0.0)
    protocol = _protocol_or_fail("compare_with_baseline")
    baseline_figures = protocol.figures_of("baseline") or {}
    baseline = phases.metric_value(baseline_figures, name)
    if baseline is None:
        raise ActivityFailed(
            f"metric {name!r} has no baseline value: the baseline saw no API call; give "
            "measure_baseline user_ids to read, or start the desktops before it"
        )
    if which == "injection" and "injection" not in protocol.phases:
        protocol.open("injection", after="baseline")
    found = protocol.figures_of(which)
    if found is None:
        raise ActivityFailed(
            "phase 'recovery' was not measured: call time_to_recover after removing the fault"
        )
    observed = phases.metric_value(found, name)
    limit = baseline * ratio_bound + extra
    reason = ""
    if observed is None:
        holds = False
        reason = f"no value for {name} in the {which} phase (no API call in it)"
    else:
        holds = observed <= limit
        if not holds:
            reason = f"{name} {observed:g} in the {which} phase is above {limit:g}"
    return {
        "holds": holds,
        "metric": name,
        "phase": which,
        "baseline": baseline,
        "observed": observed,
        "limit": round(limit, 4),
        "ratio": round(observed / baseline, 3) if observed is not None and baseline else None,
        "baseline_calls": (baseline_figures.get("api") or {}).get("calls"),
        "phase_calls": (found.get("api") or {}).get("calls"),
        "reason": reason,
    }


def recovery_within(
    max_seconds: float,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Whether the steady state came back within ``max_seconds`` of the fault's removal, as
    ``time_to_recover`` measured it: ``{"holds": bool, "seconds", "recovered", "max_seconds",
    "not_back"}``. Refuses (``ActivityFailed``) when ``time_to_recover`` has not run.

    ```json
    {"type": "probe", "name": "recovered-within-30-s",
     "tolerance": {"type": "jsonpath", "path": "$.holds", "expect": true},
     "provider": {"type": "python", "module": "chaosgenesys.protocol.probes",
                  "func": "recovery_within", "arguments": {"max_seconds": 30}}}
    ```
    """
    bound = require_number("max_seconds", max_seconds, minimum=0.0)
    protocol = phases.current()
    if protocol is None or protocol.recovery is None:
        raise ActivityFailed(
            "recovery_within: time_to_recover has not run in this run; call it in the method "
            "right after the action that removes the fault"
        )
    recovery = protocol.recovery
    seconds = recovery.get("seconds")
    return {
        "holds": bool(recovery.get("recovered")) and seconds is not None and seconds <= bound,
        "seconds": seconds,
        "recovered": recovery.get("recovered"),
        "max_seconds": bound,
        "not_back": recovery.get("not_back"),
    }


def protocol_figures(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Everything the protocol measured in this run: each phase's figures (an open phase up to
    now) and the time to recover; ``{"phases": {}, "time_to_recover": null}`` before any.

    ```json
    {"type": "probe", "name": "protocol-figures",
     "provider": {"type": "python", "module": "chaosgenesys.protocol.probes",
                  "func": "protocol_figures"}}
    ```
    """
    return phases.summary() or {"phases": {}, "time_to_recover": None}
