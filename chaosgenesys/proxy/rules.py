"""The rule model of the fault-injecting proxy: validation, matching, Fiddler import.

Pure Python with no mitmproxy import: the activities validate rules with it before anything is
sent to a proxy, and the addon (inside the proxy process) matches flows with it.

A rule is a JSON object::

    {"action": "delay", "path": "/oauth/token", "delay_ms": 5000, "jitter_ms": 0,
     "method": "POST", "host": "", "url": "", "headers": {"Content-Type": "form"},
     "probability": 1.0, "start_after": 0, "duration": 0, "count": 0}

Matching fields (all optional; an empty one matches everything): ``path`` (regex searched in the
request path with its query string), ``url`` (regex searched in the full URL), ``host`` (regex
matched against the whole host name, case-insensitive), ``method`` (exact, case-insensitive),
``headers`` (header name -> regex searched in its value; the header must be present).
``probability`` (0-1) is drawn per request, ``start_after`` / ``duration`` (seconds, counted from
when the rule is added; ``duration`` 0 = no end) bound a window, ``count`` limits how many
requests it acts on (0 = no limit).

Actions:

======================  ==========================================================================
``delay``               hold the request ``delay_ms`` (+/- ``jitter_ms``) before forwarding it
``fail``                answer ``status`` with ``body`` (default: a Genesys ErrorBody) and
                        ``response_headers``; 429/503 carry ``Retry-After: retry_after``;
                        ``delay_ms`` first if given
``reset``               reset the client connection with a TCP RST (``ECONNRESET`` at the client)
``drop``                close the client connection without an answer (a FIN)
``throttle``            deliver the response at ``rate_kbps`` kilobytes per second
``ws_close``            close matching WebSockets (both sides) with close frame ``code``/``reason``
                        ``after_ms`` after they open, or after ``after_messages`` messages
``ws_drop``             drop WebSocket messages going ``direction`` (to_client, to_server, both)
``ws_delay``            delay WebSocket messages going ``direction`` by ``delay_ms`` (+ jitter)
======================  ==========================================================================
"""

from __future__ import annotations

import json
import math
import random
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chaosgenesys import error_bodies
from chaosgenesys.error_bodies import rate_limit_message

__all__ = [
    "ACTIONS",
    "HTTP_ACTIONS",
    "MAX_DELAY_MS",
    "WS_ACTIONS",
    "Rule",
    "RuleError",
    "RuleSet",
    "error_body",
    "from_fiddler",
    "parse_rule",
    "read_fiddler_file",
]

HTTP_ACTIONS = ("delay", "fail", "reset", "drop", "throttle")
WS_ACTIONS = ("ws_close", "ws_drop", "ws_delay")
ACTIONS = HTTP_ACTIONS + WS_ACTIONS
DIRECTIONS = ("to_client", "to_server", "both")
#: Longest delay a rule may add (10 minutes).
MAX_DELAY_MS = 600_000
_FIELDS = {
    "id",
    "action",
    "path",
    "url",
    "host",
    "method",
    "headers",
    "probability",
    "start_after",
    "duration",
    "count",
    "delay_ms",
    "jitter_ms",
    "status",
    "body",
    "response_headers",
    "retry_after",
    "rate_kbps",
    "code",
    "reason",
    "after_ms",
    "after_messages",
    "direction",
    "description",
}
class RuleError(ValueError):
    """A rule that cannot be used; the message names the field and the value."""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _regex(name: str, value: Any, flags: int = 0) -> re.Pattern[str] | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RuleError(f"{name} must be a regular expression string, got {_show(value)}")
    try:
        return re.compile(value, flags)
    except re.error as error:
        raise RuleError(
            f"{name} must be a valid regular expression, got {_show(value)}: {error}"
        ) from None


def _number(name: str, value: Any, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"{name} must be a number, got {_show(value)}")
    if value < minimum:
        raise RuleError(f"{name} must be at least {minimum:g}, got {_show(value)}")
    if maximum is not None and value > maximum:
        raise RuleError(f"{name} must be at most {maximum:g}, got {_show(value)}")
    return float(value)


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{name} must be an integer, got {_show(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise RuleError(f"{name} must be an integer {bounds}, got {value}")
    return value


def _str_map(name: str, value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str | int | float) for k, v in value.items()
    ):
        raise RuleError(f"{name} must be an object of header names to strings, got {_show(value)}")
    return {k: str(v) for k, v in value.items()}


def _close_code(value: Any) -> int:
    code = _int("code", value, 1000, 4999)
    if code in (1004, 1005, 1006, 1015) or 1015 < code < 3000:
        raise RuleError(
            f"code must be a close code a server may send (1000-1003, 1007-1014 or "
            f"3000-4999), got {code}"
        )
    return code


@dataclass
class Rule:
    """One validated rule, with its compiled patterns and its counters (in the proxy)."""

    id: str
    action: str
    raw: dict[str, Any]
    path: re.Pattern[str] | None = None
    url: re.Pattern[str] | None = None
    host: re.Pattern[str] | None = None
    method: str = ""
    headers: dict[str, re.Pattern[str]] = field(default_factory=dict)
    probability: float = 1.0
    start_after: float = 0.0
    duration: float = 0.0
    count: int = 0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    status: int = 0
    body: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    retry_after: int = 1
    rate_kbps: float = 0.0
    code: int = 1000
    reason: str = ""
    after_ms: float = 0.0
    after_messages: int = 0
    direction: str = "to_client"
    added_at: float = 0.0
    # counters, kept by the proxy
    matched: int = 0
    applied: int = 0
    injected_delay_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The rule as it was given (with its id), plus its counters."""
        return {
            **self.raw,
            "id": self.id,
            "stats": {
                "matched": self.matched,
                "applied": self.applied,
                "injected_delay_ms": round(self.injected_delay_ms, 3),
            },
        }

    # -- matching ------------------------------------------------------------------------------

    def active(self, now: float) -> bool:
        """Within its window and under its count (``now`` on the clock ``added_at`` uses)."""
        if self.count and self.applied >= self.count:
            return False
        elapsed = now - self.added_at
        if elapsed < self.start_after:
            return False
        return not (self.duration and elapsed >= self.start_after + self.duration)

    def matches(
        self, method: str, host: str, path: str, url: str, headers: Mapping[str, str]
    ) -> bool:
        """Whether a request matches the rule's patterns (not its window or probability)."""
        if self.method and method.upper() != self.method:
            return False
        if self.path is not None and not self.path.search(path):
            return False
        if self.url is not None and not self.url.search(url):
            return False
        if self.host is not None and not self.host.fullmatch(host):
            return False
        for name, pattern in self.headers.items():
            value = headers.get(name)
            if value is None or not pattern.search(value):
                return False
        return True

    def draw(self) -> bool:
        """The probability draw: whether this matching request is acted upon."""
        return self.probability >= 1.0 or random.random() < self.probability

    def pick_delay_ms(self) -> float:
        """``delay_ms`` with uniform jitter of +/- ``jitter_ms`` (never below 0)."""
        if not self.jitter_ms:
            return self.delay_ms
        return max(0.0, self.delay_ms + random.uniform(-self.jitter_ms, self.jitter_ms))


#: Pattern text that cannot join an alternation with others without changing its meaning or
#: failing: numbered back-references and octal escapes (``\1``), named groups and their
#: references (``(?P<n>``, ``(?P=n)``), conditionals (``(?(1)``). Such a rule is checked alone.
_NOT_COMBINABLE = re.compile(r"\\[0-9]|\(\?P[<=]|\(\?\(")


class RuleSet:
    """The proxy's rules in order, and one combined path pattern to skip those a path can't match.

    Matching a request against 100 rules one by one costs about 36 us in Python; every HTTP
    rule with a ``path`` whose pattern can join an alternation is also folded into one compiled
    ``(?:p1)|(?:p2)|...`` (about 0.1 us to search). A path the combination does not match is
    matched by none of those rules, so :meth:`candidates` leaves them out; the others (no path,
    or a pattern that must be checked alone) keep their order. A path that matches it gets
    every rule, in order: the first matching rule still wins.
    """

    __slots__ = ("_paths", "_unfiltered", "rules")

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        combined: list[str] = []
        unfiltered: list[Rule] = []
        for rule in self.rules:
            if rule.action in HTTP_ACTIONS and rule.path is not None and _combinable(rule.path):
                combined.append(f"(?:{rule.path.pattern})")
            else:
                unfiltered.append(rule)
        self._paths: re.Pattern[str] | None = None
        self._unfiltered: tuple[Rule, ...] = self.rules
        if combined:
            try:
                self._paths = re.compile("|".join(combined))
            except re.error:  # pragma: no cover - _combinable keeps what compiles alone
                return
            self._unfiltered = tuple(unfiltered)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __contains__(self, rule: object) -> bool:
        return rule in self.rules

    def candidates(self, path: str) -> tuple[Rule, ...]:
        """The rules, in order, that a request for ``path`` may match (a superset of them)."""
        paths = self._paths
        if paths is None or paths.search(path) is not None:
            return self.rules
        return self._unfiltered


def _combinable(pattern: re.Pattern[str]) -> bool:
    if pattern.flags & ~re.UNICODE or _NOT_COMBINABLE.search(pattern.pattern):
        return False
    try:  # a global inline flag such as (?i) is refused inside a group
        re.compile(f"(?:{pattern.pattern})")
    except re.error:
        return False
    return True


def parse_rule(spec: Any, *, rule_id: str = "") -> Rule:
    """Validate a rule object; raise :class:`RuleError` naming the bad field and value."""
    if not isinstance(spec, Mapping):
        raise RuleError(f"a rule must be an object, got {_show(spec)}")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise RuleError(
            f"unknown rule field {unknown[0]!r} (allowed: {', '.join(sorted(_FIELDS))})"
        )
    action = spec.get("action")
    if action not in ACTIONS:
        raise RuleError(f"action must be one of {', '.join(ACTIONS)}, got {_show(action)}")
    method = spec.get("method") or ""
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]*", method):
        raise RuleError(f"method must be an HTTP method such as GET or PATCH, got {_show(method)}")
    headers_spec = _str_map("headers", spec.get("headers"))
    headers = {name: _regex(f"headers[{name!r}]", value) for name, value in headers_spec.items()}
    rule = Rule(
        id=str(spec.get("id") or rule_id or uuid.uuid4().hex[:8]),
        action=action,
        raw={},
        path=_regex("path", spec.get("path")),
        url=_regex("url", spec.get("url")),
        host=_regex("host", spec.get("host"), re.IGNORECASE),
        method=method.upper(),
        headers={name: pattern for name, pattern in headers.items() if pattern is not None},
        probability=_number("probability", spec.get("probability", 1.0), 0.0, 1.0),
        start_after=_number("start_after", spec.get("start_after", 0), 0.0),
        duration=_number("duration", spec.get("duration", 0), 0.0),
        count=_int("count", spec.get("count", 0), 0),
        delay_ms=_number("delay_ms", spec.get("delay_ms", 0), 0.0, MAX_DELAY_MS),
        jitter_ms=_number("jitter_ms", spec.get("jitter_ms", 0), 0.0, MAX_DELAY_MS),
        response_headers=_str_map("response_headers", spec.get("response_headers")),
        retry_after=_int("retry_after", spec.get("retry_after", 1), 0, 86400),
    )
    if action in ("delay", "ws_delay") and rule.delay_ms <= 0:
        raise RuleError(
            f"delay_ms must be greater than 0 for a {action} rule, got {rule.delay_ms:g}"
        )
    if action == "fail":
        rule.status = _int("status", spec.get("status"), 100, 599)
        body = spec.get("body")
        if body is not None and not isinstance(body, str | dict | list):
            raise RuleError(f"body must be a string or a JSON value, got {_show(body)}")
        rule.body = body if isinstance(body, str) or body is None else json.dumps(body)
    elif spec.get("status") not in (None, 0):
        raise RuleError(f"status is only for fail rules, got status={_show(spec.get('status'))}")
    if action == "throttle":
        rule.rate_kbps = _number("rate_kbps", spec.get("rate_kbps"), 0.001)
    if action == "ws_close":
        rule.code = _close_code(spec.get("code", 1000))
        reason = spec.get("reason", "")
        if not isinstance(reason, str) or len(reason.encode()) > 123:
            raise RuleError(f"reason must be a string of at most 123 bytes, got {_show(reason)}")
        rule.reason = reason
        rule.after_ms = _number("after_ms", spec.get("after_ms", 0), 0.0, MAX_DELAY_MS)
        rule.after_messages = _int("after_messages", spec.get("after_messages", 0), 0)
    if action in ("ws_drop", "ws_delay"):
        direction = spec.get("direction", "to_client")
        if direction not in DIRECTIONS:
            raise RuleError(
                f"direction must be one of {', '.join(DIRECTIONS)}, got {_show(direction)}"
            )
        rule.direction = direction
    rule.raw = {k: v for k, v in spec.items() if k != "id" and v not in (None, "", {}, [])}
    rule.raw["action"] = action
    return rule


def error_body(status: int, retry_after: int = 1) -> dict[str, Any]:
    """A Genesys Cloud ErrorBody for ``status`` (with a fresh correlation id as ``contextId``;
    a 429 says ``retry_after``), from :mod:`chaosgenesys.error_bodies`."""
    message = rate_limit_message(retry_after) if status == 429 else None
    return error_bodies.error_body(status, message=message, context_id=str(uuid.uuid4()))


# -- Fiddler AutoResponder import ------------------------------------------------------------

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
            return {"action": "delay", "delay_ms": _number(f"{where} delay", delay, 1)}
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
        raise RuleError(f"{where} must be an object or a Fiddler action string, got {_show(value)}")
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
        raise RuleError(f"rules must be a list of Fiddler rules, got {_show(rules)}")
    converted: list[dict[str, Any]] = []
    for index, item in enumerate(rules):
        where = f"rules[{index}]"
        if not isinstance(item, Mapping):
            raise RuleError(f"{where} must be an object, got {_show(item)}")
        entry = _lower_keys(item)
        if entry.get("enabled", True) in (False, "false", "False"):
            continue
        condition = entry.get("condition", entry.get("match"))
        response = entry.get("response", entry.get("action"))
        if not isinstance(condition, str):
            raise RuleError(
                f"{where}.Condition must be a string such as 'PathRegex: .*/oauth.*', "
                f"got {_show(condition)}"
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
