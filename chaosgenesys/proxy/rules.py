"""The rule model of the fault-injecting proxy: validation, matching (Fiddler rules: fiddler.py).

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
from chaosgenesys.shown import show

__all__ = [
    "ACTIONS",
    "HTTP_ACTIONS",
    "MAX_DELAY_MS",
    "WS_ACTIONS",
    "Rule",
    "RuleError",
    "RuleSet",
    "error_body",
    "number",
    "parse_rule",
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
# The few checks below mirror chaosgenesys.arguments' with RuleError instead of ActivityFailed,
# on purpose: this module runs inside the proxy process, which imports neither chaoslib nor the
# activity modules, and answers its control API with these messages, which name a rule's fields
# (``path``); the activities check their own arguments with arguments.py before a rule is sent.


class RuleError(ValueError):
    """A rule that cannot be used; the message names the field and the value."""


def _regex(name: str, value: Any, flags: int = 0) -> re.Pattern[str] | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RuleError(f"{name} must be a regular expression string, got {show(value)}")
    try:
        return re.compile(value, flags)
    except re.error as error:
        raise RuleError(
            f"{name} must be a valid regular expression, got {show(value)}: {error}"
        ) from None


def number(name: str, value: Any, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"{name} must be a number, got {show(value)}")
    if value < minimum:
        raise RuleError(f"{name} must be at least {minimum:g}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise RuleError(f"{name} must be at most {maximum:g}, got {show(value)}")
    return float(value)


def _int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{name} must be an integer, got {show(value)}")
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
        raise RuleError(f"{name} must be an object of header names to strings, got {show(value)}")
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
        raise RuleError(f"a rule must be an object, got {show(spec)}")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise RuleError(
            f"unknown rule field {unknown[0]!r} (allowed: {', '.join(sorted(_FIELDS))})"
        )
    action = spec.get("action")
    if action not in ACTIONS:
        raise RuleError(f"action must be one of {', '.join(ACTIONS)}, got {show(action)}")
    method = spec.get("method") or ""
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]*", method):
        raise RuleError(f"method must be an HTTP method such as GET or PATCH, got {show(method)}")
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
        probability=number("probability", spec.get("probability", 1.0), 0.0, 1.0),
        start_after=number("start_after", spec.get("start_after", 0), 0.0),
        duration=number("duration", spec.get("duration", 0), 0.0),
        count=_int("count", spec.get("count", 0), 0),
        delay_ms=number("delay_ms", spec.get("delay_ms", 0), 0.0, MAX_DELAY_MS),
        jitter_ms=number("jitter_ms", spec.get("jitter_ms", 0), 0.0, MAX_DELAY_MS),
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
            raise RuleError(f"body must be a string or a JSON value, got {show(body)}")
        rule.body = body if isinstance(body, str) or body is None else json.dumps(body)
    elif spec.get("status") not in (None, 0):
        raise RuleError(f"status is only for fail rules, got status={show(spec.get('status'))}")
    if action == "throttle":
        rule.rate_kbps = number("rate_kbps", spec.get("rate_kbps"), 0.001)
    if action == "ws_close":
        rule.code = _close_code(spec.get("code", 1000))
        reason = spec.get("reason", "")
        if not isinstance(reason, str) or len(reason.encode()) > 123:
            raise RuleError(f"reason must be a string of at most 123 bytes, got {show(reason)}")
        rule.reason = reason
        rule.after_ms = number("after_ms", spec.get("after_ms", 0), 0.0, MAX_DELAY_MS)
        rule.after_messages = _int("after_messages", spec.get("after_messages", 0), 0)
    if action in ("ws_drop", "ws_delay"):
        direction = spec.get("direction", "to_client")
        if direction not in DIRECTIONS:
            raise RuleError(
                f"direction must be one of {', '.join(DIRECTIONS)}, got {show(direction)}"
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
