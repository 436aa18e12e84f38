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
