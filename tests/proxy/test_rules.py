"""The rule model without a proxy: validation messages, matching, windows, Fiddler import."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosgenesys.proxy.rules import (
    RuleError,
    error_body,
    from_fiddler,
    parse_rule,
    read_fiddler_file,
)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"action": "delay", "path": "([", "delay_ms": 5}, "path must be a valid regular"),
        ({"action": "delay", "path": "/x", "delay_ms": -1}, "delay_ms must be at least 0, got -1"),
        ({"action": "explode"}, "action must be one of .*'explode'"),
        ({"action": "fail", "status": 700}, "status must be an integer from 100 to 599, got 700"),
        ({"action": "ws_close", "code": 1005}, "code must be a close code .* got 1005"),
        ({"action": "delay", "delay_ms": 5, "colour": 1}, "unknown rule field 'colour'"),
        ({"action": "reset", "probability": 2}, "probability must be at most 1"),
        ({"action": "ws_drop", "direction": "up"}, "direction must be one of"),
        ({"action": "throttle"}, "rate_kbps must be a number"),
    ],
)
def test_bad_rules_name_the_field(spec: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(spec)


def test_matching_and_windows() -> None:
    rule = parse_rule(
        {
            "action": "delay",
            "path": "/oauth",
            "method": "post",
            "host": r"login\..*",
            "headers": {"Content-Type": "form"},
            "delay_ms": 5,
            "start_after": 1,
            "duration": 2,
            "count": 1,
        }
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    assert rule.matches("POST", "login.example.com", "/oauth/token", "", headers)
    assert not rule.matches("GET", "login.example.com", "/oauth/token", "", headers)
    assert not rule.matches("POST", "api.example.com", "/oauth/token", "", headers)
    assert not rule.matches("POST", "login.example.com", "/oauth/token", "", {})
    rule.added_at = 100.0
    assert not rule.active(100.5) and rule.active(101.5) and not rule.active(103.1)
    rule.applied = 1
    assert not rule.active(101.5)


def test_fiddler_rules_of_the_issue_and_farx(tmp_path: Path) -> None:
    (delay,) = from_fiddler(
        [{"Condition": r"PathRegex: .*\/oauth.*", "Response": {"Delay": 5000, "Status": 200}}]
    )
    assert delay["action"] == "delay" and delay["delay_ms"] == 5000
    assert parse_rule(delay).matches("POST", "x", "/oauth/token", "", {})
    fail, reset = from_fiddler(
        [
            {"condition": "METHOD:PATCH regex:/presences", "response": {"status": 503}},
            {"Match": "EXACT:http://h/x", "Action": "*reset"},
            {"Match": "/never", "Action": "*drop", "Enabled": False},
        ]
    )
    assert fail == {
        "method": "PATCH",
        "url": "/presences",
        "action": "fail",
        "status": 503,
        "description": "fiddler: METHOD:PATCH regex:/presences",
    }
    assert reset["action"] == "reset" and parse_rule(reset).matches(
        "GET", "h", "/x", "http://h/x", {}
    )
    farx = tmp_path / "rules.farx"
    farx.write_text(
        '<?xml version="1.0" encoding="utf-8"?><AutoResponder><State Enabled="true">'
        '<ResponseRule Match="regex:.*/oauth.*" Action="*delay:5000" Enabled="true" />'
        '<ResponseRule Match="regex:.*/x" Action="*404" Enabled="false" />'
        "</State></AutoResponder>"
    )
    (from_file,) = from_fiddler(read_fiddler_file(str(farx)))
    assert from_file["action"] == "delay" and from_file["delay_ms"] == 5000
    with pytest.raises(RuleError, match=r"rules\[0\].Response: unsupported Fiddler action"):
        from_fiddler([{"Match": "x", "Action": "*flash"}])


def test_error_body_is_a_genesys_error_body() -> None:
    body = error_body(429, retry_after=3)
    assert body["code"] == "too.many.requests.retry.after"
    assert "[3] seconds" in body["message"]
    assert set(body) >= {"message", "code", "status", "messageWithParams", "contextId"}
