"""The rule model without a proxy: validation messages, matching, windows, Fiddler import."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosgenesys.error_bodies import error_body as sandbox_error_body
from chaosgenesys.proxy.fiddler import from_fiddler, read_fiddler_file
from chaosgenesys.proxy.rules import (
    RuleError,
    RuleSet,
    error_body,
    parse_rule,
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
    # The proxy and the sandbox answer each status with the same code (genesys-cloud-api.md:
    # 408 client.timeout, 504 request.timeout); an unknown status falls back by its class.
    for status, code in ((408, "client.timeout"), (504, "request.timeout"), (503,
                         "service.unavailable"), (418, "bad.request"), (599,
                         "internal.server.error")):
        assert error_body(status)["code"] == code
        assert sandbox_error_body(status)["code"] == code
    assert error_body(503)["contextId"] != error_body(503)["contextId"]  # fresh each time


def _first(rules: RuleSet, path: str) -> str | None:
    """The id of the first rule matching a GET of ``path`` among the set's candidates."""
    for rule in rules.candidates(path):
        if rule.matches("GET", "api.example.com", path, "", {}):
            return rule.id
    return None


def test_rule_set_leaves_out_only_rules_the_path_cannot_match() -> None:
    specs = [{"action": "delay", "path": f"^/never-{i}/", "delay_ms": 1} for i in range(100)]
    specs += [
        # A back-reference, a global inline flag, a named group: each checked alone.
        {"action": "fail", "status": 503, "path": r"^/(a)\1$"},
        {"action": "fail", "status": 503, "path": "(?i)^/LOUD$"},
        {"action": "fail", "status": 503, "path": "^/(?P<x>named)$"},
        {"action": "reset", "method": "GET"},  # no path: always a candidate
        {"action": "ws_drop", "path": "^/ws$"},  # not an HTTP rule: always a candidate
    ]
    rules = RuleSet(parse_rule(spec, rule_id=f"r{i}") for i, spec in enumerate(specs))
    assert len(rules) == 105 and rules.rules[0].id == "r0"
    alone = [rule.id for rule in rules.candidates("/api/v2/users/me")]
    assert alone == ["r100", "r101", "r102", "r103", "r104"]
    # Each kind of rule is still found, and the first match in order still wins.
    assert _first(rules, "/never-7/x") == "r7"
    assert _first(rules, "/aa") == "r100"
    assert _first(rules, "/loud") == "r101"
    assert _first(rules, "/named") == "r102"
    assert _first(rules, "/api/v2/users/me") == "r103"
    assert len(rules.candidates("/never-99/")) == 105
    # Rules the combined pattern matches anywhere in the path (search, as each rule does).
    middle = RuleSet([parse_rule({"action": "delay", "path": "users", "delay_ms": 1})])
    assert len(middle.candidates("/api/v2/users/me")) == 1
    assert not middle.candidates("/api/v2/queues")
    assert not RuleSet() and list(RuleSet().candidates("/x")) == []
