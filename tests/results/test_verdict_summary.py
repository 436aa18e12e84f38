"""``chaosgenesys.results.verdict`` on journals written here, shaped as Chaos Toolkit writes them:
the cases a real run cannot give cheaply (a browser fault's output, a journal of an older
chaosgenesys, a run without the verdict control). tests/results/test_verdict_command.py reads
journals real ``chaos run`` processes wrote."""

from __future__ import annotations

import json
from typing import Any

from chaosgenesys.results.timeline import timeline
from chaosgenesys.results.verdict import render, summarize

START = "2026-12-08T03:00:00+00:00"
END = "2026-12-08T03:00:30+00:00"
DOUBLED = ("chaoslib.exceptions.ActivityFailed: chaoslib.exceptions.ActivityFailed: delay_ms "
           "must be at least 0, got -5")


def _at(seconds: float) -> str:
    return f"2026-12-08T03:00:{seconds:06.3f}+00:00"


def _journal(run: list[dict[str, Any]] | None = None, *, configuration: Any = None,
             probes: list[dict[str, Any]] | None = None, extensions: Any = None,
             deviated: bool = False) -> dict[str, Any]:
    return {
        "chaoslib-version": "1.45.1",
        "experiment": {"title": "built", "configuration": configuration or {},
                       **({"extensions": extensions} if extensions else {})},
        "status": "completed", "deviated": deviated, "start": START, "end": END,
        "duration": 30.0,
        "steady_states": {"before": {"steady_state_met": True, "probes": probes or []},
                          "after": None, "during": []},
        "run": run or [], "rollbacks": [],
    }


def _refusal(output: Any, status: str = "succeeded") -> dict[str, Any]:
    """``block_websocket_handshakes`` as examples/browser-websocket-close.json writes it."""
    return {
        "activity": {"type": "action", "name": "handshakes-refused", "provider": {
            "type": "python", "module": "chaosgenesys.browser.actions",
            "func": "block_websocket_handshakes",
            "arguments": {"url_pattern": "streaming", "duration": "${refuse_seconds}",
                          "close_code": 4000}}},
        "output": output, "status": status, "start": _at(2), "end": _at(2.5), "duration": 0.5,
    }


def _window(journal: dict[str, Any]) -> dict[str, Any]:
    (fault,) = summarize(journal)["faults"]
    return dict(fault)


def test_the_window_is_the_duration_the_action_ran_with() -> None:
    """``--var refuse_seconds:int=20``: the journal's configuration still says 4, the action's
    output says 20.0 (what it put in force): 20 s in the text, the JSON and the timeline."""
    journal = _journal([_refusal({"id": "f1", "kind": "block", "duration": 20.0})],
                       configuration={"refuse_seconds": 4})
    fault = _window(journal)
    assert fault["seconds"] == 20.0 and fault["ended_by"] == "its duration (20 s)", fault
    assert ("handshakes-refused (browser.actions.block_websocket_handshakes, succeeded) at "
            "03:00:02.000: 20.0 s, ended by its duration (20 s)") in render(summarize(journal))
    (band,) = timeline(journal)["faults"]
    assert band["end"] - band["start"] == 20.0


def test_without_a_duration_in_the_output_the_configuration_is_the_fallback() -> None:
    for output in (None, {"id": "f1"}, "done"):
        journal = _journal([_refusal(output)], configuration={"refuse_seconds": 4})
        fault = _window(journal)
        assert fault["seconds"] == 4.0 and fault["ended_by"] == "its duration (4 s)", output


def test_an_output_without_an_end_is_not_given_the_configured_one() -> None:
    """The output says the fault had no duration (``null``, 0): it lasted to the end of the
    run, whatever the configuration says."""
    for said in (None, 0):
        journal = _journal([_refusal({"id": "f1", "duration": said})],
                           configuration={"refuse_seconds": 4})
        fault = _window(journal)
        assert fault["seconds"] == 28.0 and fault["ended_by"] == "the end of the run", said


def test_the_verdict_control_s_resolved_duration_when_the_output_has_none() -> None:
    """A sandbox fault's output has no ``duration``; the verdict control journals the
    duration it resolved (with --var applied), which wins over the configuration's."""
    item = {
        "activity": {"type": "action", "name": "slow", "provider": {
            "type": "python", "module": "chaosgenesys.sandbox.actions",
            "func": "inject_api_fault",
            "arguments": {"path_pattern": "^/", "delay_ms": 10, "duration": "${s}"}}},
        "output": {"id": "x", "fault": {"expires_in": 19.999}}, "status": "succeeded",
        "start": _at(1), "end": _at(1.1), "duration": 0.1,
    }
    control = {"name": "chaosgenesys-verdict", "failed_actions": [],
               "durations": [{"name": "slow", "start": _at(1), "duration": 20}]}
    fault = _window(_journal([item], configuration={"s": 4}, extensions=[control]))
    assert fault["seconds"] == 20.0 and fault["ended_by"] == "its duration (20 s)", fault
    other = {**control, "durations": [{"name": "slow", "start": _at(9), "duration": 20}]}
    fault = _window(_journal([item], configuration={"s": 4}, extensions=[other]))
    assert fault["seconds"] == 4.0, "another run of the same action: not this one's"


def _deviated(output: Any, tolerance: Any) -> dict[str, Any]:
    return {"activity": {"type": "probe", "name": "refreshed", "tolerance": tolerance,
                         "provider": {"type": "python", "module": "m", "func": "f"}},
            "output": output, "status": "succeeded", "tolerance_met": False,
            "start": _at(1), "end": _at(1.2), "duration": 0.2}


LONG = {"user_id": "0b6b3c5e-0000-4000-8000-000000000001", "mode": "resilient",
        "login": "client_credentials", "scopes": ["a" * 30] * 6,
        "ui": {"connection": "disconnected", "presence": "On Queue"}, "token_refreshes": 1}


def _deviation_line(output: Any, tolerance: Any) -> str:
    text = render(summarize(_journal(probes=[_deviated(output, tolerance)])))
    (line,) = [x for x in text.splitlines() if x.startswith("deviated (")]
    return line


def test_a_target_tolerance_prints_the_target_field() -> None:
    tolerance = {"type": "range", "range": [2, 1000], "target": "token_refreshes"}
    assert _deviation_line(LONG, tolerance) == (
        "deviated (before the method): refreshed observed token_refreshes = 1, tolerance "
        + json.dumps(tolerance))
    # an output without the field: chaoslib held the whole output to the range; say so
    line = _deviation_line({"user_id": "u"}, tolerance)
    assert 'observed no token_refreshes in {"user_id": "u"}, tolerance' in line, line
    # a regex on a process probe's stdout
    regex = {"type": "regex", "pattern": "ok", "target": "stdout"}
    line = _deviation_line({"status": 0, "stdout": "not fine\n", "stderr": "x" * 400}, regex)
    assert 'observed stdout = "not fine\\n", tolerance' in line, line


def test_a_jsonpath_tolerance_prints_the_value_at_its_path() -> None:
    tolerance = {"type": "jsonpath", "path": "$.ui.connection", "expect": "connected"}
    assert _deviation_line(LONG, tolerance) == (
        'deviated (before the method): refreshed observed $.ui.connection = "disconnected", '
        "tolerance " + json.dumps(tolerance))
    # a path this reader does not follow: the output, as before
    line = _deviation_line(LONG, {"type": "jsonpath", "path": "$..connection", "expect": 1})
    assert line.startswith('deviated (before the method): refreshed observed {"user_id": ')


def _check(name: str, met: bool) -> dict[str, Any]:
    return {"activity": {"type": "probe", "name": name, "tolerance": True,
                         "provider": {"type": "python", "module": "m", "func": "f"}},
            "output": met, "status": "succeeded", "tolerance_met": met,
            "start": _at(1), "end": _at(1.1), "duration": 0.1}


def test_a_probe_that_deviated_is_not_held() -> None:
    journal = _journal(probes=[_check("api-shows-agent-1-on-queue", True),
                               _check("desktop-connected", True)], deviated=True)
    journal["steady_states"]["after"] = {"steady_state_met": False, "probes": [
        _check("desktop-connected", True), _check("api-shows-agent-1-on-queue", False)]}
    text = render(summarize(journal))
    assert "held: 2 check(s) of 1 probe(s) (desktop-connected)" in text.splitlines(), text
    assert ("deviated (after the method): api-shows-agent-1-on-queue observed false, "
            "tolerance true") in text


def test_an_exception_s_name_is_said_once() -> None:
    """From the verdict control's journal of an older chaosgenesys, and from the journal's own
    traceback when the run had no verdict control."""
    control = {"name": "chaosgenesys-verdict", "failed_actions": [
        {"name": "negative-delay", "phase": "method", "error": DOUBLED}]}
    once = "chaoslib.exceptions.ActivityFailed: delay_ms must be at least 0, got -5"
    summary = summarize(_journal(extensions=[control]))
    assert summary["failed_actions"][0]["error"] == once
    assert f"failed method action negative-delay: {once}" in render(summary).splitlines()
    failed = {"activity": {"type": "action", "name": "negative-delay", "provider": {
        "type": "process", "path": "true"}}, "status": "failed", "output": None,
        "exception": ["Traceback (most recent call last):\n", "  ...\n", DOUBLED + "\n"],
        "start": _at(1), "end": _at(1.1), "duration": 0.1}
    summary = summarize(_journal([failed]))
    assert f"failed method action negative-delay: {once}" in render(summary).splitlines()


def test_a_fault_action_that_failed_had_no_window() -> None:
    """A refused fault leaves nothing applied: the verdict says so, the timeline has no band
    for it, and the report's table says it was not applied."""
    from chaosgenesys.results.report import html_report

    journal = _journal([_refusal(None, status="failed")], configuration={"refuse_seconds": 4})
    fault = _window(journal)
    assert fault["seconds"] == 0.0 and fault["status"] == "failed", fault
    assert ("handshakes-refused (browser.actions.block_websocket_handshakes, failed) at "
            "03:00:02.000: not applied (the action failed)") in render(summarize(journal))
    data = timeline(journal)
    (band,) = data["faults"]
    assert band["applied"] is False and band["end"] == band["start"]
    assert "<td>not applied</td>" in html_report(data, "")


# -- the kill switch's reverts end windows; a control that never checked never passed ----------

def _epoch(seconds: float) -> float:
    from chaosgenesys.results.journal import parse_time

    value = parse_time(_at(seconds))
    assert value is not None
    return value


def _fault(label: str, module: str, func: str, output: Any, at: float = 1.0,
           **arguments: Any) -> dict[str, Any]:
    return {"activity": {"type": "action", "name": label, "provider": {
        "type": "python", "module": module, "func": func, "arguments": arguments}},
        "output": output, "status": "succeeded", "start": _at(at), "end": _at(at + 0.1),
        "duration": 0.1}


def _switch(tripped_at: float | None, reverted: list[dict[str, Any]],
            after: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The kill switch's journal entry, shaped as ``killswitch.after_experiment_control``
    writes it (the fields the verdict reads)."""
    return {"name": "chaosgenesys-killswitch", "tripped": tripped_at is not None,
            "reason": "kill switch: API latency p99 ..." if tripped_at is not None else None,
            "tripped_at": None if tripped_at is None else _epoch(tripped_at),
            "reverted": reverted, "reverted_after": after or [],
            "thresholds": {"max_api_p99_ms": 500, "api_window_seconds": 3},
            "checks": 50, "peaks": {"api_p99_ms": 1500.0, "websocket_error_rate": None},
            "refused": None}


def _faults_of(journal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(f["name"]): f for f in summarize(journal)["faults"]}


def test_the_faults_the_kill_switch_reverted_end_at_its_revert() -> None:
    """Matched by the id each fault action's output carries: a network fault's ``fault_id``, a
    browser fault's ``id``, a proxy rule by its proxy's ``start_proxy`` ``fault_id``, a sandbox
    fault's ``id`` among the sandbox entry's ``fault_ids``. What the switch did not revert
    (another id; ``gone``: something else had; ``failed``) keeps its own end."""
    netem = _fault("latency", "chaosgenesys.network.actions", "add_latency",
                   {"fault_id": "netem-1", "duration": 30.0}, delay_ms=200, duration=30)
    other = _fault("loss", "chaosgenesys.network.actions", "add_packet_loss",
                   {"fault_id": "netem-2", "duration": 20.0}, loss_percent=5, duration=20)
    gone = _fault("throttle", "chaosgenesys.network.actions", "throttle_bandwidth",
                  {"fault_id": "htb-3", "duration": 25.0}, rate="1mbit", duration=25)
    page = _fault("page-slow", "chaosgenesys.browser.actions", "delay_browser_requests",
                  {"id": "browser-4", "kind": "delay", "duration": 30.0}, url_pattern="x",
                  delay_ms=100, duration=30)
    proxy = _fault("start", "chaosgenesys.proxy.actions", "start_proxy",
                   {"name": "desk", "fault_id": "proxy-5"}, at=0.5, name="desk")
    rule = _fault("rule", "chaosgenesys.proxy.actions", "delay_requests",
                  {"id": "r1", "duration": 30.0}, name="desk", path_pattern=".", delay_ms=9,
                  duration=30)
    api = _fault("users-api-slow", "chaosgenesys.sandbox.actions", "inject_api_fault",
                 {"id": "sandbox-6", "fault": {}, "duration": 30}, path_pattern="/users",
                 delay_ms=1500, duration=30)
    at = _epoch(5.25)
    switch = _switch(5.2, [
        {"id": "netem-1", "kind": "netem", "status": "reverted", "at": at},
        {"id": "htb-3", "kind": "htb", "status": "gone", "at": at},
        {"id": "browser-4", "kind": "browser-fault", "status": "reverted", "at": at},
        {"id": "proxy-5", "kind": "proxy", "status": "reverted", "at": at},
        {"id": None, "kind": "sandbox", "description": "1 sandbox server-side fault(s)",
         "status": "reverted", "at": at, "fault_ids": ["sandbox-6"]},
    ])
    journal = _journal([netem, other, gone, page, proxy, rule, api], extensions=[switch])
    faults = _faults_of(journal)
    for name in ("latency", "page-slow", "rule", "users-api-slow"):
        assert faults[name]["ended_by"] == "the kill switch", faults[name]
        assert faults[name]["seconds"] == 4.25, faults[name]
    assert faults["loss"]["ended_by"] == "its duration (20 s)"
    assert faults["throttle"]["ended_by"] == "its duration (25 s)"
    text = render(summarize(journal))
    assert ("users-api-slow (sandbox.actions.inject_api_fault, succeeded) at 03:00:01.000: "
            "4.25 s, ended by the kill switch") in text, text
    bands = {band["name"]: band for band in timeline(journal)["faults"]}
    assert bands["users-api-slow"]["end"] == at


def test_a_journal_without_the_revert_times_ends_them_at_the_trip() -> None:
    """A kill switch journal of an older chaosgenesys: no ``at``, no ``fault_ids``. The trip's
    ``tripped_at`` is the end, and a sandbox fault in force then was cleared with the rest."""
    api = _fault("users-api-slow", "chaosgenesys.sandbox.actions", "inject_api_fault",
                 {"id": "sandbox-6", "fault": {}, "duration": 30}, path_pattern="/users",
                 delay_ms=1500, duration=30)
    switch = _switch(5.0, [{"id": None, "kind": "sandbox", "status": "reverted",
                            "description": "1 sandbox server-side fault(s)"}])
    (fault,) = summarize(_journal([api], extensions=[switch]))["faults"]
    assert fault["seconds"] == 4.0 and fault["ended_by"] == "the kill switch", fault
    later = _fault("after-the-trip", "chaosgenesys.sandbox.actions", "inject_api_fault",
                   {"id": "sandbox-7", "duration": 3}, at=8.0, path_pattern="/x", delay_ms=1,
                   duration=3)
    faults = _faults_of(_journal([api, later], extensions=[switch]))
    assert faults["after-the-trip"]["ended_by"] == "its duration (3 s)"  # began after it


def test_the_kill_switch_s_revert_after_the_run_ends_what_it_reverted() -> None:
    """Nothing removed the browser fault; its 60 s outlast the 30 s run: the kill switch's
    revert after the run ended it (at its ``at``; the run's end for a journal without it)."""
    page = _fault("page-slow", "chaosgenesys.browser.actions", "delay_browser_requests",
                  {"id": "browser-4", "kind": "delay", "duration": 60.0}, url_pattern="x",
                  delay_ms=100, duration=60)
    after = {"id": "browser-4", "kind": "browser-fault", "status": "reverted",
             "at": _epoch(30.4)}
    (fault,) = summarize(_journal([page], extensions=[_switch(None, [], [after])]))["faults"]
    assert fault["ended_by"] == "the kill switch's revert after the run", fault
    assert fault["seconds"] == 29.4, fault
    del after["at"]
    (fault,) = summarize(_journal([page], extensions=[_switch(None, [], [after])]))["faults"]
    assert fault["seconds"] == 29.0, fault  # the run's end: the hook runs once it has ended


def test_a_sandbox_fault_ends_with_the_run_whose_control_stopped_its_sandbox() -> None:
    """The embedded sandbox stops with the run (the sandbox control's after hook), and its
    faults with it; a sandbox elsewhere (no sandbox control) keeps them for their duration."""
    api = _fault("users-api-slow", "chaosgenesys.sandbox.actions", "inject_api_fault",
                 {"id": "sandbox-6", "fault": {}, "duration": 60}, path_pattern="/users",
                 delay_ms=1500, duration=60)
    journal = _journal([api])
    (fault,) = summarize(journal)["faults"]
    assert fault["seconds"] == 60.0, fault
    journal["experiment"]["controls"] = [{"name": "genesys-sandbox", "provider": {
        "type": "python", "module": "chaosgenesys.controls.sandbox"}}]
    (fault,) = summarize(journal)["faults"]
    assert fault["seconds"] == 29.0, fault
    assert fault["ended_by"] == "the end of the run (its sandbox stopped)", fault


def _control_lines(*extensions: dict[str, Any]) -> list[str]:
    journal = _journal(extensions=list(extensions))
    journal["status"] = "interrupted"
    return [line for line in render(summarize(journal)).splitlines()
            if line.split(":")[0] in ("preflight", "safeguard", "kill switch", "tokens")]


def test_a_control_that_never_checked_is_not_said_to_have_passed() -> None:
    """The safeguard's entry when the run stopped before it (the preflight refused):
    ``{"refused": null, "last_check": null}``: it never checked; nor did a kill switch that
    armed and never reached its first check. What a control could not do is said."""
    assert _control_lines(
        {"name": "chaosgenesys-safeguard", "refused": None, "last_check": None},
    ) == ["safeguard: not checked (the run stopped before it)"]
    assert _control_lines(
        {"name": "chaosgenesys-safeguard", "refused": None,
         "last_check": {"queue_id": "q", "isolated": True, "members": 1}},
    ) == ["safeguard: the chaos queue was isolated"]
    assert _control_lines({"name": "chaosgenesys-preflight", "passed": None}) == [
        "preflight: not checked (the run stopped before it)"]
    assert _control_lines({"name": "chaosgenesys-preflight", "passed": False, "rows": []}) == [
        "preflight: REFUSED: (no row says why)"]
    never = {**_switch(None, []), "checks": 0, "peaks": {"api_p99_ms": None,
                                                        "websocket_error_rate": None}}
    assert _control_lines(never) == [
        "kill switch: armed, never checked (the run ended before its first check)"]
    failed = {"id": "netem-1", "kind": "netem", "description": "netem delay on eth0",
              "status": "failed", "error": "EPERM"}
    (line,) = _control_lines(_switch(5.0, [failed], [failed]))
    assert line.endswith("; 1 fault(s) it could NOT revert (run `chaosgenesys cleanup`): "
                         "netem delay on eth0"), line
    retried = {**failed, "status": "reverted", "at": _epoch(30.1)}  # after the run, it could
    (line,) = _control_lines(_switch(5.0, [failed], [retried]))
    assert line.startswith("kill switch: TRIPPED: ") and "NOT revert" not in line, line
    assert _control_lines({"name": "chaosgenesys-tokens", "revoked": 0, "still_working": 0,
                           "problems": ["tooling: ConnectionError: refused"]}) == [
        "tokens: 0 revoked, 0 still working; problems: tooling: ConnectionError: refused"]


def test_a_kill_switch_that_refused_the_run_says_why() -> None:
    """``killswitch.after_experiment_control``'s entry when it refused to arm."""
    reason = "killswitch control: max_api_p99_ms must be greater than 0, got -5"
    refused = {"name": "chaosgenesys-killswitch", "refused": reason, "reverted_after": []}
    assert _control_lines(refused) == [f"kill switch: REFUSED: {reason}"]
    drawn = timeline(_journal(extensions=[refused]))
    assert drawn["p99_limit_from"] == "default"
    assert (f"the kill switch never armed ({reason}): the default API p99 limit (2,000 ms) is "
            "drawn") in drawn["missing"], drawn["missing"]


def test_a_proxy_rule_s_window_starts_when_its_start_after_has_passed() -> None:
    """``delay_requests(start_after=5, duration=10)`` added at 2 s: in force from 7 s to 17 s
    (the rule the proxy answers carries both), in the verdict and the timeline."""
    rule = {"id": "r1", "kind": "delay", "path_pattern": "/oauth", "delay_ms": 5000,
            "start_after": 5.0, "duration": 10.0}
    item = {
        "activity": {"type": "action", "name": "slow-oauth-later", "provider": {
            "type": "python", "module": "chaosgenesys.proxy.actions", "func": "delay_requests",
            "arguments": {"path_pattern": "/oauth", "delay_ms": 5000, "start_after": 5,
                          "duration": 10}}},
        "output": rule, "status": "succeeded", "start": _at(2), "end": _at(2.1), "duration": 0.1,
    }
    journal = _journal([item])
    fault = _window(journal)
    assert fault["seconds"] == 10.0 and fault["ended_by"] == "its duration (10 s)", fault
    assert "at 03:00:07.000: 10.0 s, ended by its duration (10 s)" in render(summarize(journal))
    (band,) = timeline(journal)["faults"]
    assert band["end"] - band["start"] == 10.0
