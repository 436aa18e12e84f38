"""Fiddler AutoResponder rules (``.farx`` files or their JSON export) as proxy rules.

``chaosgenesys proxy --fiddler rules.farx`` and ``add_rules(fiddler_file=...)`` read them here;
each becomes a rule of :mod:`chaosgenesys.proxy.rules`, validated by its ``parse_rule``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chaosgenesys.proxy.rules import RuleError, number, parse_rule
from chaosgenesys.shown import show

__all__ = ["from_fiddler", "read_fiddler_file"]

_KEY = re.compile(r"[^a-z]")


def _lower_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {_KEY.sub("", str(k).lower()): v for k, v in value.items()}


def _fiddler_condition(text: str, where: str) -> dict[str, Any]:
    """A Fiddler match string -> matching fields of a rule."""
    fields: dict[str, Any] = {}
    rest = text.strip()
    method = re.match(r"(?i)method:\s*([A-Za-z]+)\s*", rest)
    if method:
        fields["method"] = method.group(1).upper()
        rest = rest[method.end() :]
    prefix, _, value = rest.partition(":")
    kind = prefix.strip().lower()
    value = value.strip()
    if kind == "pathregex":
        fields["path"] = value
    elif kind == "regex":
        fields["url"] = value
    elif kind == "exact":
        fields["url"] = "^" + re.escape(value) + "$"
    elif kind == "host":
        fields["host"] = re.escape(value)
    elif kind == "path":
        fields["path"] = re.escape(value)
    elif kind == "not":
        fields["url"] = "^(?!.*" + re.escape(value) + ")"
    elif (
        rest
        and not rest.lower().startswith(("http:", "https:"))
        and ":" in rest
        and " " not in kind
    ):
        raise RuleError(
            f"{where}: unknown condition {text!r} (use PathRegex:, regex:, EXACT:, Host:, Path:, "
            "NOT:, METHOD:<verb>, or a plain substring of the URL)"
        )
    elif rest:
        fields["url"] = "(?i)" + re.escape(rest)
    return fields


def _fiddler_action(value: Any, where: str) -> dict[str, Any]:
    """A Fiddler response (an object or an action string such as ``*delay:5000``) -> action."""
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered.startswith("*delay:"):
            try:
                delay = float(text[7:])
            except ValueError:
                raise RuleError(f"{where}: *delay needs milliseconds, got {text!r}") from None
            return {"action": "delay", "delay_ms": number(f"{where} delay", delay, 1)}
        if lowered in ("*reset", "*abort"):
            return {"action": "reset"}
        if lowered in ("*drop", "*exit"):
            return {"action": "drop"}
        status = re.fullmatch(r"\*?(\d{3})(?:[_-].*)?", text)
        if status:
            return {"action": "fail", "status": int(status.group(1))}
        raise RuleError(
            f"{where}: unsupported Fiddler action {text!r} (use *delay:<ms>, *reset, *drop or a "
            "status such as *503)"
        )
    if not isinstance(value, Mapping):
        raise RuleError(f"{where} must be an object or a Fiddler action string, got {show(value)}")
    response = _lower_keys(value)
    known = {"delay", "status", "body", "headers", "reset", "drop", "retryafter", "jitter"}
    unknown = sorted(set(response) - known)
    if unknown:
        raise RuleError(
            f"{where}: unknown key {unknown[0]!r} (allowed: Delay, Status, Body, "
            "Headers, Reset, Drop, RetryAfter, Jitter)"
        )
    if response.get("reset"):
        return {"action": "reset"}
    if response.get("drop"):
        return {"action": "drop"}
    delay = response.get("delay", 0) or 0
    code = response.get("status", 0) or 0
    body = response.get("body")
    headers = response.get("headers")
    out: dict[str, Any]
    if (code and code != 200) or body is not None:
        out = {"action": "fail", "status": code or 200}
        if body is not None:
            out["body"] = body
        if headers:
            out["response_headers"] = headers
        if response.get("retryafter") is not None:
            out["retry_after"] = response["retryafter"]
        if delay:
            out["delay_ms"] = delay
    elif delay:
        out = {"action": "delay", "delay_ms": delay}
    else:
        raise RuleError(
            f"{where}: the response does nothing (give Delay, a Status other than "
            "200, a Body, Reset or Drop)"
        )
    if response.get("jitter"):
        out["jitter_ms"] = response["jitter"]
    return out


def from_fiddler(rules: Any) -> list[dict[str, Any]]:
    """Fiddler AutoResponder-style rules -> chaosgenesys rule objects (validated).

    Accepted forms, per rule: ``{"Condition": "PathRegex: .*/oauth.*", "Response": {"Delay":
    5000, "Status": 200}}`` (JSON form; ``Status`` 200 without ``Body`` means "delay, then let the
    real server answer"), and the ``.farx`` attributes ``{"Match": "regex:.*/oauth.*", "Action":
    "*delay:5000", "Enabled": true}``. Disabled rules are skipped. Keys are case-insensitive.
    """
    if isinstance(rules, Mapping):
        inner = _lower_keys(rules)
        rules = inner.get("rules", inner.get("responserules", [rules]))
    if not isinstance(rules, list):
        raise RuleError(f"rules must be a list of Fiddler rules, got {show(rules)}")
    converted: list[dict[str, Any]] = []
    for index, item in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(item, Mapping):
            raise RuleError(f"{where} must be an object, got {show(item)}")
        entry = _lower_keys(item)
        if entry.get("enabled", True) in (False, "false", "False"):
            continue
        condition = entry.get("condition", entry.get("match"))
        response = entry.get("response", entry.get("action"))
        if not isinstance(condition, str):
            raise RuleError(
                f"{where}.Condition must be a string such as 'PathRegex: .*/oauth.*', "
                f"got {show(condition)}"
            )
        if response is None:
            raise RuleError(f"{where}.Response is missing")
        rule = {
            **_fiddler_condition(condition, f"{where}.Condition"),
            **_fiddler_action(response, f"{where}.Response"),
        }
        rule["description"] = f"fiddler: {condition}"
        try:
            parse_rule(rule)
        except RuleError as error:
            raise RuleError(f"{where}: {error}") from None
        converted.append(rule)
    return converted


def read_fiddler_file(path: str) -> list[dict[str, Any]]:
    """Rules from a Fiddler ``.farx`` export (XML ``ResponseRule`` elements) or a JSON file."""
    import xml.etree.ElementTree as ElementTree

    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except OSError as error:
        raise RuleError(f"file {path!r} cannot be read: {error.strerror or error}") from None
    if text.lstrip().startswith("<"):
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as error:
            raise RuleError(f"file {path!r} is not a valid .farx file: {error}") from None
        return [
            {
                "Match": element.get("Match", ""),
                "Action": element.get("Action", ""),
                "Enabled": element.get("Enabled", "true").lower() != "false",
            }
            for element in root.iter("ResponseRule")
        ]
    try:
        loaded = json.loads(text)
    except ValueError as error:
        raise RuleError(f"file {path!r} is neither .farx XML nor JSON: {error}") from None
    if isinstance(loaded, Mapping):
        inner = _lower_keys(loaded)
        loaded = inner.get("rules", inner.get("responserules", [loaded]))
    if not isinstance(loaded, list):
        raise RuleError(f"file {path!r} must hold a list of rules")
    return loaded
