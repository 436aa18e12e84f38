"""The verdict of a run, read from its journal: short, for a CI log or a person.

A dry run (``chaos run --dry=...``) is said to be one: its skipped probes are neither held nor
deviated, its skipped faults were not applied, and its verdict speaks of the controls only.

:func:`summarize` gathers what decides and explains the outcome: the status; each probe of the
hypothesis (before and after the method) with what it observed against its tolerance; the
actions that failed; each fault with its window (from the action that applied it to its
duration's end, the action that removed it or the kill switch's revert of it, on its trip or
after the run, whichever came first; the kill switch's journaled ``reverted`` and
``reverted_after`` entries name the fault ids they reverted, matched to the id the fault
action's output carries; the duration the action ran with: its output's,
else the one the verdict control resolved, ``--var`` applied, else the journal's configuration
for a ``${placeholder}``); the desktops' figures (the synthetic desktops' and the browser
pages' that the verdict control journaled); the protocol's phases and time to recover; and what
the preflight, the safeguard, the kill switch and the tokens control decided (a control the
run stopped before it, whose entry shows no check, is said not to have checked, never to have
passed; a control that refused the run says why). :func:`render`
writes it as a few lines of text: a deviated probe with the field its tolerance held to
(:func:`observed_words`), the probes that held (a probe that deviated, before or after the
method, is not one of them), an error with its exception's name once.
``chaosgenesys verdict journal.json`` prints either (``--json``).
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from chaosgenesys.results.journal import activity_key, extension, parse_time, runs

__all__ = [
    "FAULT_ACTIONS", "INSTANT_ACTIONS", "REMOVAL_ACTIONS", "error_of", "hit_words",
    "observed_words", "once", "render", "summarize",
]

#: Actions that put a fault in force (by ``module.func``).
FAULT_ACTIONS = frozenset(
    [f"chaosgenesys.network.actions.{f}" for f in (
        "add_latency", "add_packet_loss", "apply_netem", "blackhole", "throttle_bandwidth")]
    + [f"chaosgenesys.proxy.actions.{f}" for f in (
        "add_rules", "close_websockets", "delay_requests", "delay_websocket_messages",
        "drop_websocket_messages", "fail_requests", "load_fiddler_rules", "reset_requests",
        "throttle_responses")]
    + [f"chaosgenesys.sockets.actions.{f}" for f in ("reject_connections", "reset_connections")]
    + [f"chaosgenesys.sandbox.actions.{f}" for f in (
        "inject_api_fault", "close_notification_sockets", "send_socket_closing",
        "expire_tokens", "revoke_tokens", "disconnect_call")]
    + [f"chaosgenesys.browser.actions.{f}" for f in (
        "delay_browser_requests", "fail_browser_requests", "block_websocket_handshakes",
        "close_browser_websockets", "emulate_network")]
)
#: Fault actions that are one event (a close, a reset, an expiry), not a window.
INSTANT_ACTIONS = frozenset([
    "chaosgenesys.proxy.actions.close_websockets",
    "chaosgenesys.sockets.actions.reset_connections",
    "chaosgenesys.sandbox.actions.close_notification_sockets",
    "chaosgenesys.sandbox.actions.send_socket_closing",
    "chaosgenesys.sandbox.actions.expire_tokens",
    "chaosgenesys.sandbox.actions.revoke_tokens",
    "chaosgenesys.sandbox.actions.disconnect_call",
    "chaosgenesys.browser.actions.close_browser_websockets",
])
#: Actions that take faults away.
REMOVAL_ACTIONS = frozenset([
    "chaosgenesys.network.actions.remove_faults",
    "chaosgenesys.proxy.actions.clear_rules",
    "chaosgenesys.proxy.actions.stop_proxy",
    "chaosgenesys.sockets.actions.remove_rejections",
    "chaosgenesys.sandbox.actions.clear_sandbox_faults",
    "chaosgenesys.browser.actions.clear_browser_faults",
    "chaosgenesys.faults.actions.revert_all",
])
#: The module each family of faults is removed by (a removal ends only its own family's faults).
_FAMILY = {
    "network": ("network", "faults"),
    "proxy": ("proxy", "faults"),
    "sockets": ("sockets", "faults"),
    "sandbox": ("sandbox",),
    "browser": ("browser", "faults"),
}


def _family(key: str) -> str:
    return key.split(".")[1] if key.count(".") >= 2 else ""


def _dry(journal: dict[str, Any]) -> str | None:
    """What ``chaos run --dry=...`` skipped (``probes``, ``actions``, ``activities``, ``pause``)."""
    value = (journal.get("experiment") or {}).get("dry")
    return str(value) if value else None


def _probes(journal: dict[str, Any]) -> list[dict[str, Any]]:
    skipped = _dry(journal) in ("probes", "activities")
    found = []
    for when, state in ((journal.get("steady_states") or {}).items()):
        for probe in (state or {}).get("probes") or ():
            activity = probe.get("activity") or {}
            found.append({
                "when": when,
                "name": activity.get("name"),
                "met": None if skipped else probe.get("tolerance_met"),
                "observed": probe.get("output"),
                "tolerance": activity.get("tolerance"),
                "status": probe.get("status"),
            })
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolved(value: Any, journal: dict[str, Any]) -> Any:
    """A ``"${key}"`` argument as the experiment's configuration gives it (the journal keeps
    activities as written); anything else, or a key given another way (an environment
    variable, ``--var``), as it is. The configuration the journal keeps is the file's, not the
    one the run used (``chaos run --var`` is recorded nowhere): the last resort of
    :func:`_duration_used`."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        configured = ((journal.get("experiment") or {}).get("configuration") or {}).get(
            value[2:-1])
        if _number(configured):
            return configured
    return value


def _duration_used(item: dict[str, Any], journal: dict[str, Any]) -> Any:
    """The duration a fault action ran with: what its output says it put in force
    (``duration``; ``null`` or 0: none); else what the verdict control resolved from the
    run's configuration (``--var`` applied) for this very run of it (``durations``, matched by
    name and start); else its ``duration`` argument, a ``"${key}"`` resolved from the
    configuration the journal keeps."""
    output = item.get("output")
    if isinstance(output, dict) and "duration" in output and (
            output["duration"] is None or _number(output["duration"])):
        return output["duration"]
    activity = item.get("activity") or {}
    control = extension(journal, "chaosgenesys-verdict") or {}
    for entry in control.get("durations") or ():
        if (isinstance(entry, dict) and entry.get("name") == activity.get("name")
                and entry.get("start") == item.get("start")
                and (entry.get("duration") is None or _number(entry.get("duration")))):
            return entry.get("duration")
    arguments = (activity.get("provider") or {}).get("arguments") or {}
    return _resolved(arguments.get("duration") if isinstance(arguments, dict) else None,
                     journal)


#: A fault action that failed: a chaosgenesys fault leaves nothing half-applied, so it had no
#: window (the verdict says so; the timeline draws none).
NOT_APPLIED = "itself (the action failed: nothing was applied)"


def applied(fault: dict[str, Any]) -> bool:
    """Whether a fault of :func:`summarize` was in force at all (not a failed action, not a
    dry run's)."""
    ended_by = str(fault.get("ended_by") or "")
    return ended_by != NOT_APPLIED and "dry run" not in ended_by


#: How the verdict says the kill switch ended a fault: when it tripped, and after the run.
KILLSWITCH_TRIP = "the kill switch"
KILLSWITCH_AFTER = "the kill switch's revert after the run"


def _killswitch_reverts(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """What the kill switch reverted, each ``{"at", "by", "kind", "ids"}``: ``ids`` the
    registry fault id (``kind`` any but ``sandbox``) or the sandbox faults it removed
    (``kind`` ``sandbox``; ``None``: it did not say which, so every sandbox fault in force
    then). Only what it did revert (not ``gone``: something else had; not ``failed``). ``at``
    is the entry's, else the trip's ``tripped_at`` (a trip's revert) or the run's end (the
    revert after it: Chaos Toolkit calls that hook once the run has ended)."""
    switch = extension(journal, "chaosgenesys-killswitch") or {}
    tripped_at = switch.get("tripped_at")
    found = []
    for part, by, default in (
            ("reverted", KILLSWITCH_TRIP, tripped_at if _number(tripped_at) else None),
            ("reverted_after", KILLSWITCH_AFTER, parse_time(journal.get("end")))):
        for entry in switch.get(part) or ():
            if not isinstance(entry, dict) or entry.get("status") != "reverted":
                continue
            at = entry.get("at") if _number(entry.get("at")) else default
            if at is None:
                continue
            if entry.get("kind") == "sandbox":
                listed = entry.get("fault_ids")
                ids = ({str(i) for i in listed} if isinstance(listed, list) else None)
            elif entry.get("id"):
                ids = {str(entry["id"])}
            else:
                continue
            found.append({"at": float(at), "by": by, "kind": entry.get("kind"), "ids": ids})
    return found


def _fault_id(item: dict[str, Any], earlier: list[dict[str, Any]]) -> str | None:
    """The id a fault action's output carries, which the kill switch's reverted entries name:
    the registry's ``fault_id`` (network, sockets) or ``id`` (browser; for a sandbox fault, the
    sandbox's own id); for a proxy rule, the ``fault_id`` of the ``start_proxy`` (of the same
    ``name``) that started the proxy it went to, the latest before it."""
    key = activity_key(item)
    if _family(key) == "proxy":
        arguments = ((item.get("activity") or {}).get("provider") or {}).get("arguments") or {}
        name = arguments.get("name", "default") if isinstance(arguments, dict) else "default"
        for before in reversed(earlier):
            output = before.get("output")
            if (activity_key(before) == "chaosgenesys.proxy.actions.start_proxy"
                    and isinstance(output, dict) and output.get("name") == name):
                return str(output["fault_id"]) if output.get("fault_id") else None
        return None
    output = item.get("output")
    if not isinstance(output, dict):
        return None
    found = output.get("fault_id") or output.get("id")
    return str(found) if isinstance(found, str | int) and found else None


def _killswitch_end(item: dict[str, Any], earlier: list[dict[str, Any]], start: float,
                    reverts: list[dict[str, Any]]) -> tuple[float, str] | None:
    """When, and by which of its reverts, the kill switch ended this fault (the first); None
    when it did not."""
    sandbox = _family(activity_key(item)) == "sandbox"
    fault_id = _fault_id(item, earlier)

    def ended(revert: dict[str, Any]) -> bool:
        if revert["at"] < start or (revert["kind"] == "sandbox") != sandbox:
            return False
        if revert["ids"] is None:  # the sandbox cleared, not saying which: every fault in it
            return True
        return fault_id is not None and fault_id in revert["ids"]

    return min(((r["at"], r["by"]) for r in reverts if ended(r)), default=None)


def _own_sandbox(journal: dict[str, Any]) -> bool:
    """Whether the run declared the sandbox control: the sandbox its faults went to stopped
    with the run, and every server-side fault with it."""
    return any(
        isinstance(control, dict)
        and (control.get("provider") or {}).get("module") == "chaosgenesys.controls.sandbox"
        for control in (journal.get("experiment") or {}).get("controls") or ()
    )


def _faults(journal: dict[str, Any]) -> list[dict[str, Any]]:
    """Each fault of the method and its window."""
    items = runs(journal) + runs(journal, "rollbacks")
    end_of_run = parse_time(journal.get("end"))
    reverts = _killswitch_reverts(journal)
    dry = _dry(journal) in ("actions", "activities")
    faults: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        key = activity_key(item)
        if key not in FAULT_ACTIONS:
            continue
        if dry:
            faults.append(_without_window(item, "skipped (dry run)",
                                          "itself (a dry run injects nothing)"))
            continue
        if item.get("status") == "failed":  # refused before anything changed, or undone
            faults.append(_without_window(item, "failed", NOT_APPLIED))
            continue
        if key in INSTANT_ACTIONS:
            faults.append(_without_window(item, item.get("status"), "itself (a single event)"))
            continue
        start = parse_time(item.get("start"))
        duration = _duration_used(item, journal)
        end, ended_by = None, "the end of the run"
        started = item.get("start")
        delayed = _start_after(item)
        if delayed and start is not None:  # a proxy rule in force only from start_after on
            start += delayed
            started = datetime.fromtimestamp(start, UTC).isoformat(timespec="microseconds")
        if _number(duration) and duration > 0 and start is not None:
            end, ended_by = start + float(duration), f"its duration ({duration:g} s)"
        removals = (
            later for later in items[position + 1:]
            if activity_key(later) in REMOVAL_ACTIONS
            and _family(activity_key(later)) in _FAMILY.get(_family(key), ())
        )
        removal = next(removals, None)
        hits = None
        if removal is not None:
            removed_at = parse_time(removal.get("start"))
            if removed_at is not None and (end is None or removed_at < end):
                end = removed_at
                ended_by = f"{(removal.get('activity') or {}).get('name')}"
                hits = _hits(item, removal)
        if start is not None:
            stopped = _killswitch_end(item, items[:position], start, reverts)
            if stopped is not None and (end is None or stopped[0] < end):
                (end, ended_by), hits = stopped, None
        if (end is not None and end_of_run is not None and end > end_of_run
                and _family(key) == "sandbox" and _own_sandbox(journal)):
            end, ended_by = end_of_run, "the end of the run (its sandbox stopped)"
        if end is None:
            end = end_of_run
        fault = {
            "name": (item.get("activity") or {}).get("name"),
            "action": key.removeprefix("chaosgenesys."),
            "status": item.get("status"),
            "start": started,
            "seconds": None if start is None or end is None else round(max(0.0, end - start), 3),
            "ended_by": ended_by,
        }
        if hits is not None:
            fault["hits"] = hits
        faults.append(fault)
    return faults


def _without_window(item: dict[str, Any], status: Any, ended_by: str) -> dict[str, Any]:
    """A fault action with no window of its own: a dry run's, a failed one, a single event."""
    return {
        "name": (item.get("activity") or {}).get("name"),
        "action": activity_key(item).removeprefix("chaosgenesys."),
        "status": status,
        "start": item.get("start"),
        "seconds": 0.0,
        "ended_by": ended_by,
    }


def _start_after(item: dict[str, Any]) -> float:
    """Seconds after its action a fault came into force: a proxy rule's ``start_after`` (its
    output is the rule as the proxy keeps it); 0 for every other fault."""
    output = item.get("output")
    if not isinstance(output, dict) or not activity_key(item).startswith(
            "chaosgenesys.proxy.actions."):
        return 0.0
    value: Any = output.get("start_after")
    return float(value) if _number(value) and float(value) > 0 else 0.0


#: How the verdict says what a browser fault hit (``clear_browser_faults``' ``hits``).
_HIT_WORDS = {
    "delay": "held {} request(s)",
    "fail": "answered {} request(s)",
    "block": "refused {} handshake(s)",
}


def _hits(fault: dict[str, Any], removal: dict[str, Any]) -> dict[str, Any] | None:
    """What a browser fault hit in all, as the removal that ended it answered (its ``hits`` by
    fault id), with the fault's kind; None when the removal does not say."""
    output, answer = fault.get("output"), removal.get("output")
    if not isinstance(output, dict) or not isinstance(answer, dict):
        return None
    every = answer.get("hits")
    figures = every.get(output.get("id")) if isinstance(every, dict) else None
    if not isinstance(figures, dict) or not isinstance(figures.get("matched"), int):
        return None
    return {"kind": output.get("kind"), **figures}


def hit_words(fault: dict[str, Any]) -> str:
    """``"; held 1 request(s)"``: what a fault of the summary hit, as a line ends; "" when
    nothing says."""
    hits = fault.get("hits")
    if not isinstance(hits, dict):
        return ""
    words = _HIT_WORDS.get(str(hits.get("kind")), "matched {}")
    return "; " + words.format(hits.get("matched"))


def summarize(journal: dict[str, Any]) -> dict[str, Any]:
    """The verdict of the run the journal records (module docstring)."""
    verdict = extension(journal, "chaosgenesys-verdict") or {}
    probes = _probes(journal)
    failed = [
        {**entry, "error": once(str(entry.get("error")))} if isinstance(entry, dict) else entry
        for entry in verdict.get("failed_actions") or ()
    ] or [
        {"name": (item.get("activity") or {}).get("name"), "phase": phase,
         "error": error_of(item)}
        for phase, part in (("method", "run"), ("rollback", "rollbacks"))
        for item in runs(journal, part)
        if item.get("status") == "failed" and (item.get("activity") or {}).get("type") == "action"
    ]
    summary: dict[str, Any] = {
        "experiment": (journal.get("experiment") or {}).get("title"),
        "dry": _dry(journal),
        "status": journal.get("status"),
        "deviated": journal.get("deviated"),
        "seconds": journal.get("duration"),
        # Chaos Toolkit ends a run whose steady state failed before the method "completed":
        # nothing was tested; a probe outside its tolerance or a failed action is never a pass
        "passed": journal.get("status") == "completed" and not journal.get("deviated")
        and all(p["met"] is not False for p in probes) and not failed,
        "probes": probes,
        "deviations": [p for p in probes if p["met"] is False],
        "failed_actions": failed,
        "faults": _faults(journal),
        "desktops": verdict.get("desktops") or {},
        "protocol": verdict.get("protocol"),
        "controls": {},
        "chaosgenesys_controls": bool(verdict),
    }
    controls = summary["controls"]
    for name, key in (("chaosgenesys-preflight", "preflight"),
                      ("chaosgenesys-safeguard", "safeguard"),
                      ("chaosgenesys-killswitch", "killswitch"),
                      ("chaosgenesys-tokens", "tokens")):
        found = extension(journal, name)
        if found is not None:
            controls[key] = found
    return summary


def _clock(value: Any) -> str:
    """``2026-12-06T02:35:26.550536+00:00`` → ``02:35:26.550``."""
    text = str(value or "")
    return text[11:23] if len(text) >= 23 and text[10] == "T" else text


def _rate(value: Any) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.1%}"


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def once(text: str) -> str:
    """An error without its exception's name repeated: chaoslib wraps an exception of an
    activity in ``ActivityFailed`` whose message starts with the wrapped one's name, and the
    journal's traceback names ``ActivityFailed`` again, so an ``ActivityFailed`` raised by the
    activity reads ``chaoslib.exceptions.ActivityFailed: chaoslib.exceptions.ActivityFailed:
    delay_ms must be ...``; this says the name once."""
    while True:
        name, colon, rest = text.partition(": ")
        if not colon or not name or " " in name or not rest.startswith(name + ": "):
            return text
        text = rest


def error_of(run: dict[str, Any]) -> str:
    """The last line of an activity run's exception as the journal keeps it, the exception's
    name said once (:func:`once`); ``"failed"`` when the journal has none."""
    lines = run.get("exception") or []
    text = "".join(str(line) for line in lines).strip() if isinstance(lines, list) else ""
    return once(text.splitlines()[-1]) if text else "failed"


_MISSING = object()
#: A JSONPath this reader follows: ``$`` then ``.name`` and ``[index]`` steps.
_PATH = re.compile(r"\$(?:\.[A-Za-z_][\w-]*|\[\d+\])+")
_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]")


def _at_path(value: Any, path: str) -> Any:
    """The value at a plain JSONPath (``$.ui.connection``, ``$.items[0].id``); ``_MISSING``
    when it is not there or the path is not plain."""
    for name, index in _STEP.findall(path[1:]):
        if name and isinstance(value, dict) and name in value:
            value = value[name]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
    return value


def observed_words(observed: Any, tolerance: Any, limit: int = 160) -> str:
    """What a probe observed, as a deviation line says it: the field its tolerance held to
    (``token_refreshes = 1`` for a ``target``; ``$.ui.connection = "disconnected"`` for a
    plain JSONPath), not the start of a long output cut off before it; the output (shortened
    to ``limit``) otherwise."""
    if not isinstance(tolerance, dict):
        return _short(observed, limit)
    value, said = observed, ""
    target = tolerance.get("target")
    if isinstance(target, str) and target:
        # chaoslib holds the whole output to the tolerance when the field is not in it
        if not isinstance(value, dict) or target not in value:
            return f"no {target} in {_short(observed, limit)}"
        value, said = value[target], target
    path = tolerance.get("path")
    if tolerance.get("type") == "jsonpath" and isinstance(path, str) and _PATH.fullmatch(path):
        if isinstance(value, str | bytes):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        found = _at_path(value, path)
        where = f"{said} {path}" if said else path
        if found is _MISSING:
            return f"no {where} in {_short(value, limit)}"
        return f"{where} = {_short(found, limit)}"
    return f"{said} = {_short(value, limit)}" if said else _short(observed, limit)


def _desktop_lines(desktops: dict[str, Any]) -> list[str]:
    lines = []
    for user, figures in sorted((desktops.get("synthetic") or {}).items()):
        lines.append(
            f"  synthetic {user} ({figures.get('mode')}): reconnected "
            f"{figures.get('reconnects')} time(s){_longest(figures)}; "
            f"longest off queue {figures.get('longest_off_queue_s')} s; zombie "
            f"{figures.get('zombie_s')} s; logged out "
            f"{'yes' if figures.get('logged_out') else 'no'}; interactions lost "
            f"{figures.get('interactions_lost')}; consistency violations "
            f"{figures.get('consistency_violations')}"
        )
    for observer, figures in sorted((desktops.get("browser") or {}).items()):
        lines.append(
            f"  browser {observer}: reconnected {figures.get('reconnects')} time(s)"
            f"{_longest(figures)}; disconnected {figures.get('disconnected_s')}"
            f" s; zombie {figures.get('zombie_s')} s; API errors {figures.get('api_errors')}; "
            f"WebSocket errors {figures.get('websocket_errors')}"
        )
    return lines


def _longest(figures: dict[str, Any]) -> str:
    """The longest reconnect, when there was one to time."""
    longest = figures.get("reconnect_max_ms")
    return "" if longest is None else f", longest {longest} ms"


#: What a control's line says when its journal entry shows it never decided anything.
NOT_CHECKED = "not checked (the run stopped before it)"


def _control_lines(controls: dict[str, Any]) -> list[str]:
    """One line per control that journaled itself; each says only what its entry shows it did
    (a control the run stopped before says it never checked, not that all was well)."""
    lines = []
    preflight = controls.get("preflight")
    if preflight is not None:
        lines.append(_preflight_line(preflight))
    safeguard = controls.get("safeguard")
    if safeguard is not None:
        lines.append(_safeguard_line(safeguard))
    killswitch = controls.get("killswitch")
    if killswitch is not None:
        lines.append(_killswitch_line(killswitch))
    tokens = controls.get("tokens")
    if tokens is not None:
        lines.append(_tokens_line(tokens))
    return lines


def _preflight_line(preflight: dict[str, Any]) -> str:
    passed = preflight.get("passed")
    if passed is True:
        return "preflight: passed"
    if passed is None:
        return f"preflight: {NOT_CHECKED}"
    if preflight.get("refused"):  # its own arguments: it checked nothing
        return f"preflight: REFUSED: {preflight['refused']}"
    missing = [r for r in preflight.get("rows") or ()
               if isinstance(r, dict) and r.get("status") == "missing"]
    return "preflight: REFUSED: " + ("; ".join(
        f"{r.get('check')} {r.get('subject')}" for r in missing) or "(no row says why)")


def _safeguard_line(safeguard: dict[str, Any]) -> str:
    if safeguard.get("refused"):
        return f"safeguard: REFUSED: {safeguard['refused']}"
    last = safeguard.get("last_check")
    if not isinstance(last, dict):
        return f"safeguard: {NOT_CHECKED}"
    if last.get("isolated") is True:
        return "safeguard: the chaos queue was isolated"
    return f"safeguard: the chaos queue was not shown isolated (last check {_short(last)})"


def _killswitch_line(killswitch: dict[str, Any]) -> str:
    unreverted = _unreverted(killswitch)
    if killswitch.get("refused"):
        return f"kill switch: REFUSED: {killswitch['refused']}{unreverted}"
    if killswitch.get("tripped"):
        return f"kill switch: TRIPPED: {killswitch.get('reason')}{unreverted}"
    if "tripped" not in killswitch:
        return f"kill switch: {NOT_CHECKED}{unreverted}"
    if not killswitch.get("checks"):
        return ("kill switch: armed, never checked (the run ended before its first check)"
                f"{unreverted}")
    peaks = killswitch.get("peaks") or {}
    p99 = peaks.get("api_p99_ms")
    return (f"kill switch: not tripped (peaks: API p99 "
            f"{'n/a' if p99 is None else f'{p99} ms'}, "
            f"WebSocket error rate {_rate(peaks.get('websocket_error_rate'))}"
            f"{_closest(killswitch)}){unreverted}")


def _unreverted(killswitch: dict[str, Any]) -> str:
    """``"; 1 fault(s) it could NOT revert (...): ..."``: what the switch failed to revert in
    the end; "" when it reverted all it found. Its revert after the run tries again what its
    trip could not (a fault reverted since is no longer recorded): that one is the last word,
    the trip's when the journal has none."""
    last = killswitch.get("reverted_after")
    if not isinstance(last, list):
        last = killswitch.get("reverted") or []
    failed = [entry for entry in last
              if isinstance(entry, dict) and entry.get("status") == "failed"]
    if not failed:
        return ""
    return (f"; {len(failed)} fault(s) it could NOT revert (run `chaosgenesys cleanup`): "
            + "; ".join(str(e.get("description") or e.get("kind")) for e in failed))


def _tokens_line(tokens: dict[str, Any]) -> str:
    if tokens.get("revoked") is None and tokens.get("still_working") is None:
        return f"tokens: {NOT_CHECKED}"
    line = (f"tokens: {tokens.get('revoked')} revoked, "
            f"{tokens.get('still_working')} still working")
    problems = [str(p) for p in tokens.get("problems") or ()]
    return line + (f"; problems: {'; '.join(problems)}" if problems else "")


def _closest(killswitch: dict[str, Any]) -> str:
    """How close the run came to the switch: the longest each signal stayed over its limit,
    against the window that trips it (nothing for a journal written before it was kept)."""
    longest = killswitch.get("longest_over_seconds")
    limits = killswitch.get("thresholds") or {}
    if not isinstance(longest, dict) or not limits:
        return ""
    return (
        f"; longest over a limit: API p99 {longest.get('api_p99_ms', 0):.1f} s of "
        f"{limits.get('api_window_seconds', 0):g} s, WebSocket error rate "
        f"{longest.get('websocket_error_rate', 0):.1f} s of "
        f"{limits.get('websocket_window_seconds', 0):g} s"
    )


def _protocol_lines(protocol: dict[str, Any] | None) -> list[str]:
    if not protocol:
        return []
    lines = []
    for name, figures in (protocol.get("phases") or {}).items():
        api = (figures or {}).get("api") or {}
        lines.append(f"  {name} {figures.get('seconds')} s: API p50 {api.get('p50_ms')} ms, "
                     f"p99 {api.get('p99_ms')} ms over {api.get('calls')} call(s), error rate "
                     f"{_rate(api.get('error_rate'))}")
    recovery = protocol.get("time_to_recover")
    if recovery:
        lines.append(f"  time to recover: {recovery.get('seconds')} s" if recovery.get("recovered")
                     else f"  time to recover: none within {recovery.get('timeout')} s")
    return ["protocol:", *lines]


def render(summary: dict[str, Any]) -> str:
    """The verdict as a few lines of text (what ``chaosgenesys verdict`` prints)."""
    outcome = "PASSED" if summary["passed"] else "FAILED"
    if summary.get("dry"):
        outcome = (f"DRY RUN ({summary['dry']} skipped, nothing tested): the controls "
                   + ("passed" if summary["passed"] else "FAILED"))
    lines = [
        f"{outcome}: {summary['experiment']}",
        f"status {summary['status']}, deviated {str(summary['deviated']).lower()}, "
        f"{summary['seconds'] if summary['seconds'] is None else round(summary['seconds'], 1)} s",
    ]
    for probe in summary["deviations"]:
        lines.append(f"deviated ({probe['when']} the method): {probe['name']} observed "
                     f"{observed_words(probe['observed'], probe['tolerance'])}, tolerance "
                     f"{_short(probe['tolerance'])}")
    # a probe that deviated, before or after the method, held nothing: not one of its checks
    deviated = {p["name"] for p in summary["deviations"]}
    held = [p for p in summary["probes"] if p["met"] and p["name"] not in deviated]
    if held:
        names = sorted({str(p["name"]) for p in held})
        lines.append(f"held: {len(held)} check(s) of {len(names)} probe(s) ("
                     + ", ".join(names) + ")")
    for action in summary["failed_actions"]:
        lines.append(f"failed {action.get('phase')} action {action.get('name')}: "
                     f"{action.get('error')}")
    if summary["faults"]:
        lines.append("faults:")
        lines.extend(
            f"  {f['name']} ({f['action']}, {f['status']}) at {_clock(f['start'])}: "
            + ("not applied (the action failed)" if f["ended_by"] == NOT_APPLIED
               else "not applied" if "dry run" in f["ended_by"]
               else "a single event" if f["ended_by"].startswith("itself")
               else f"{f['seconds']} s, ended by {f['ended_by']}{hit_words(f)}")
            for f in summary["faults"]
        )
    desktop_lines = _desktop_lines(summary["desktops"])
    if desktop_lines:
        lines.extend(["desktops:", *desktop_lines])
    lines.extend(_protocol_lines(summary["protocol"]))
    lines.extend(_control_lines(summary["controls"]))
    if not summary["chaosgenesys_controls"]:
        lines.append("(no chaosgenesys verdict control in this run: declare it for the "
                     "desktops' figures and the protocol, docs/controls.md)")
    return "\n".join(lines)
