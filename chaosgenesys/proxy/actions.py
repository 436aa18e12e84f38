"""Actions of the fault-injecting proxy: start it, add fault rules while it runs, stop it.

The proxy is mitmproxy in its own process with the chaosgenesys addon (see ``docs/proxy.md``).
Point a browser, the synthetic agent or the platform client at it (``regular`` mode: an HTTP(S)
forward proxy; ``reverse:URL``: in front of one API host, e.g. the sandbox; ``upstream:URL``:
chained to another proxy), then add rules by name. Rules take effect on the next request, without
a restart, and every action returns the rule as the proxy recorded it (with its ``id``).

A running proxy is recorded in the fault registry before it starts: ``stop_proxy``,
``chaosgenesys.faults.actions.revert_all`` and ``chaosgenesys cleanup`` stop it, and with a
``duration`` the guardian stops it at the deadline even if the run dies.

Importing this module imports neither mitmproxy nor aiohttp.
"""

import re
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import (
    require_bool,
    require_int,
    require_number,
    require_regex,
    require_text,
)
from chaosgenesys.proxy.proxy_args import (
    MODE,
    check_ca_bundle,
    check_listen_host,
    check_name,
    rule_error,
    rule_spec,
)

__all__ = [
    "add_rules",
    "clear_rules",
    "close_websockets",
    "delay_requests",
    "delay_websocket_messages",
    "drop_websocket_messages",
    "fail_requests",
    "load_fiddler_rules",
    "reset_requests",
    "start_proxy",
    "stop_proxy",
    "throttle_responses",
]

#: Default of the list/mapping arguments (never mutated: values are copied).
NO_HOSTS: list[str] = []
NO_HEADERS: dict[str, str] = {}
NO_RULES: list[dict[str, Any]] = []
def _add(name: str, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate ``rules`` here (nothing is sent if one is bad), then add them to proxy ``name``."""
    from chaosgenesys.proxy import control
    from chaosgenesys.proxy.rules import RuleError, parse_rule

    for rule in rules:
        try:
            parse_rule(rule)
        except RuleError as error:
            raise rule_error(error) from None
    answer = control.call(name, "POST", "/rules", {"rules": rules})
    added: list[dict[str, Any]] = answer.get("added", [])
    return added


def start_proxy(
    name: str = "default",
    port: int = 8080,
    mode: str = "regular",
    listen_host: str = "127.0.0.1",
    duration: float = None,  # type: ignore[assignment]  # noqa: RUF013 - the contract's default
    confdir: str = "",
    ignore_hosts: list[str] = NO_HOSTS,
    verify_upstream: bool = True,
    upstream_ca: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Start a fault-injecting proxy (mitmproxy in its own process) called ``name``.

    ``mode``: ``regular`` (a forward proxy; HTTPS is intercepted with mitmproxy's CA),
    ``reverse:http://127.0.0.1:8765`` (in front of one host: point ``genesys_api_url`` at the
    proxy), ``upstream:http://corp-proxy:3128`` or ``socks5``. ``port`` 0 picks a free port (read
    it back from the answer). Binds ``listen_host`` 127.0.0.1 by default. ``duration`` (seconds,
    counted from when the proxy listens) stops the proxy by itself then, even if the run dies.
    ``confdir`` holds mitmproxy's CA (default ``~/.mitmproxy``); ``ignore_hosts`` are host regexes
    passed through untouched (no interception, no rules); upstream certificates are verified
    unless ``verify_upstream`` is false (``upstream_ca``: a PEM bundle to trust). Returns
    ``proxy_url``, ``port``, ``pid``, ``ca_cert`` (the PEM file to trust), the registry
    ``fault_id`` and ``deadline`` (epoch seconds, or null without ``duration``).

    ```json
    {"type": "action", "name": "start-proxy",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "start_proxy",
                  "arguments": {"name": "desktop", "port": 8080, "duration": 600}}}
    ```
    """
    from chaosgenesys.proxy import control

    name = check_name(name)
    port = require_int("port", port, minimum=0, maximum=65535)
    if not isinstance(mode, str) or not MODE.match(mode):
        raise ActivityFailed(
            "mode must be 'regular', 'socks5', 'reverse:<scheme>://host[:port]' or "
            f"'upstream:<scheme>://host[:port]', got {mode!r}"
        )
    listen_host = check_listen_host(listen_host)
    if duration is not None:
        duration = require_number("duration", duration, exclusive_minimum=True)
    if not isinstance(ignore_hosts, list) or not all(isinstance(h, str) for h in ignore_hosts):
        raise ActivityFailed(f"ignore_hosts must be a list of host regexes, got {ignore_hosts!r}")
    for index, pattern in enumerate(ignore_hosts):
        require_regex(f"ignore_hosts[{index}]", pattern)
    require_bool("verify_upstream", verify_upstream)
    require_text("confdir", confdir, allow_empty=True)
    require_text("upstream_ca", upstream_ca, allow_empty=True)
    if upstream_ca:
        check_ca_bundle(upstream_ca)
    control.check_mitmproxy()
    control.check_port_free(listen_host, port)
    return control.start(
        name=name,
        port=port,
        mode=mode,
        listen_host=listen_host,
        duration=duration,
        confdir=confdir,
        ignore_hosts=list(ignore_hosts),
        verify_upstream=verify_upstream,
        upstream_ca=upstream_ca,
    )


def stop_proxy(
    name: str = "default", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Stop the proxy called ``name``; does nothing (``stopped: false``) if it is not running.

    Returns its final statistics when it was running.

    ```json
    {"type": "action", "name": "stop-proxy",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "stop_proxy", "arguments": {"name": "desktop"}}}
    ```
    """
    from chaosgenesys.proxy import control

    return control.stop(check_name(name))


def delay_requests(
    path_pattern: str,
    delay_ms: int,
    jitter_ms: int = 0,
    method: str = "",
    host: str = "",
    headers: dict[str, str] = NO_HEADERS,
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Hold requests whose path matches ``path_pattern`` for ``delay_ms`` (+/- ``jitter_ms``).

    Matching: ``path_pattern`` (regex searched in path + query), ``method``, ``host`` (regex of
    the whole host name), ``headers`` (name -> regex). ``probability`` (0-1) per request;
    ``start_after``/``duration`` (seconds from now; 0 = no end) bound the fault; ``count`` stops
    after N requests (0 = no limit). The guide's Layer 2 token refresh delay:

    ```json
    {"type": "action", "name": "slow-oauth-refresh",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "delay_requests",
                  "arguments": {"path_pattern": ".*/oauth.*", "delay_ms": 5000}}}
    ```
    """
    rule = rule_spec(
        "delay", path_pattern, method, host, headers, probability, start_after, duration, count
    )
    rule["delay_ms"] = require_number("delay_ms", delay_ms, exclusive_minimum=True, maximum=600_000)
    rule["jitter_ms"] = require_number("jitter_ms", jitter_ms, maximum=600_000)
    return _add(check_name(name), [rule])[0]


def fail_requests(
    path_pattern: str,
    status: int,
    body: str = "",
    retry_after: int = 1,
    delay_ms: int = 0,
    response_headers: dict[str, str] = NO_HEADERS,
    method: str = "",
    host: str = "",
    headers: dict[str, str] = NO_HEADERS,
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Answer matching requests with ``status`` instead of forwarding them.

    The default ``body`` is a Genesys Cloud ErrorBody for the status (``service.unavailable``,
    ``too.many.requests.retry.after``, ...) with an ``ININ-Correlation-Id``; 429 and 503 carry
    ``Retry-After: retry_after``. ``delay_ms`` delays the answer. Matching and windows as in
    ``delay_requests``. Presence updates failing for 30 s:

    ```json
    {"type": "action", "name": "presence-updates-fail",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "fail_requests",
                  "arguments": {"path_pattern": "/presences/purecloud$", "method": "PATCH",
                                "status": 503, "duration": 30}}}
    ```
    """
    from chaosgenesys.arguments import require_http_status

    rule = rule_spec(
        "fail", path_pattern, method, host, headers, probability, start_after, duration, count
    )
    rule["status"] = require_http_status("status", status, allow_zero=False)
    require_text("body", body, allow_empty=True)
    if body:
        rule["body"] = body
    rule["retry_after"] = require_int("retry_after", retry_after, maximum=86400)
    rule["delay_ms"] = require_number("delay_ms", delay_ms, maximum=600_000)
    if not isinstance(response_headers, dict):
        raise ActivityFailed(f"response_headers must be an object, got {response_headers!r}")
    rule["response_headers"] = dict(response_headers)
    return _add(check_name(name), [rule])[0]


def reset_requests(
    path_pattern: str,
    method: str = "",
    host: str = "",
    headers: dict[str, str] = NO_HEADERS,
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Reset the client's connection (a real TCP RST: ``ECONNRESET``) on matching requests.

    ```json
    {"type": "action", "name": "reset-conversation-reads",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "reset_requests",
                  "arguments": {"path_pattern": "^/api/v2/conversations", "count": 3}}}
    ```
    """
    rule = rule_spec(
        "reset", path_pattern, method, host, headers, probability, start_after, duration, count
    )
    return _add(check_name(name), [rule])[0]


def throttle_responses(
    path_pattern: str,
    rate_kbps: float,
    method: str = "",
    host: str = "",
    headers: dict[str, str] = NO_HEADERS,
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Deliver matching responses no faster than ``rate_kbps`` kilobytes per second.

    The headers go at once; the body is streamed to the client at that rate, in slices of about
    50 ms worth of bytes, as over a slow link (only the matching responses are slowed).

    ```json
    {"type": "action", "name": "slow-user-reads",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "throttle_responses",
                  "arguments": {"path_pattern": "^/api/v2/users", "rate_kbps": 2}}}
    ```
    """
    rule = rule_spec(
        "throttle", path_pattern, method, host, headers, probability, start_after, duration, count
    )
    rule["rate_kbps"] = require_number("rate_kbps", rate_kbps, exclusive_minimum=True)
    return _add(check_name(name), [rule])[0]


def close_websockets(
    path_pattern: str,
    code: int,
    reason: str = "",
    after_ms: int = 0,
    after_messages: int = 0,
    host: str = "",
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Close matching WebSockets (open ones and new ones) with close frame ``code``.

    Both sides get the close frame, as if the server had sent it. ``after_ms`` waits that long
    after the rule is added (or after a new socket opens); ``after_messages`` closes after that
    many messages instead. ``count`` limits how many sockets are closed (0 = every one, while the
    rule lasts). The guide's Layer 3 server-side close:

    ```json
    {"type": "action", "name": "close-notification-socket",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "close_websockets",
                  "arguments": {"path_pattern": "^/channels/", "code": 1001, "count": 1}}}
    ```
    """
    rule = rule_spec(
        "ws_close", path_pattern, "", host, NO_HEADERS, probability, start_after, duration, count
    )
    rule["code"] = require_int("code", code, minimum=1000, maximum=4999)
    require_text("reason", reason, allow_empty=True)
    rule["reason"] = reason
    rule["after_ms"] = require_number("after_ms", after_ms, maximum=600_000)
    rule["after_messages"] = require_int("after_messages", after_messages)
    return _add(check_name(name), [rule])[0]


def drop_websocket_messages(
    path_pattern: str,
    direction: str = "to_client",
    host: str = "",
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Drop WebSocket messages going ``direction`` (``to_client``, ``to_server`` or ``both``).

    The socket stays open: the desktop's "zombie state" (connected, hearing nothing).

    ```json
    {"type": "action", "name": "silence-notifications",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "drop_websocket_messages",
                  "arguments": {"path_pattern": "^/channels/", "direction": "to_client",
                                "duration": 30}}}
    ```
    """
    rule = rule_spec(
        "ws_drop", path_pattern, "", host, NO_HEADERS, probability, start_after, duration, count
    )
    rule["direction"] = direction
    return _add(check_name(name), [rule])[0]


def delay_websocket_messages(
    path_pattern: str,
    delay_ms: int,
    direction: str = "to_client",
    jitter_ms: int = 0,
    host: str = "",
    probability: float = 1.0,
    start_after: float = 0.0,
    duration: float = 0.0,
    count: int = 0,
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Delay WebSocket messages going ``direction`` by ``delay_ms`` (+/- ``jitter_ms``), in order.

    ```json
    {"type": "action", "name": "late-notifications",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "delay_websocket_messages",
                  "arguments": {"path_pattern": "^/channels/", "delay_ms": 2000}}}
    ```
    """
    rule = rule_spec(
        "ws_delay", path_pattern, "", host, NO_HEADERS, probability, start_after, duration, count
    )
    rule["delay_ms"] = require_number("delay_ms", delay_ms, exclusive_minimum=True, maximum=600_000)
    rule["jitter_ms"] = require_number("jitter_ms", jitter_ms, maximum=600_000)
    rule["direction"] = direction
    return _add(check_name(name), [rule])[0]


def add_rules(
    rules: list[dict[str, Any]],
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Add rules in the proxy's own format (see ``docs/proxy.md``), all or none.

    ```json
    {"type": "action", "name": "slow-then-failing-presence",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "add_rules",
                  "arguments": {"rules": [
                    {"action": "delay", "path": "/presences", "delay_ms": 800},
                    {"action": "fail", "path": "/routingstatus", "status": 429,
                     "retry_after": 3}]}}}
    ```
    """
    if not isinstance(rules, list) or not rules:
        raise ActivityFailed(f"rules must be a non-empty list of rule objects, got {rules!r:.120}")
    return {"added": _add(check_name(name), [dict(rule) for rule in rules])}


def load_fiddler_rules(
    rules: list[dict[str, Any]] = NO_RULES,
    file: str = "",
    name: str = "default",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Import Fiddler AutoResponder-style rules (inline ``rules`` and/or a ``.farx``/JSON ``file``).

    JSON form: ``{"Condition": "PathRegex: .*/oauth.*", "Response": {"Delay": 5000, "Status":
    200}}`` (``Status`` 200 without ``Body``: delay, then the real server answers; another status
    or a ``Body``: answer that). ``.farx`` form: ``{"Match": "regex:.*/oauth.*", "Action":
    "*delay:5000"}``; actions ``*delay:<ms>``, ``*reset``, ``*drop``, ``*503``. Conditions:
    ``PathRegex:``, ``regex:`` (the full URL), ``EXACT:``, ``Host:``, ``Path:``, ``NOT:``,
    ``METHOD:<verb>`` prefix, or a plain URL substring. Disabled rules are skipped.

    ```json
    {"type": "action", "name": "fiddler-oauth-delay",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "load_fiddler_rules",
                  "arguments": {"rules": [{"Condition": "PathRegex: .*\\\\/oauth.*",
                                           "Response": {"Delay": 5000, "Status": 200}}]}}}
    ```
    """
    from chaosgenesys.proxy.fiddler import from_fiddler, read_fiddler_file
    from chaosgenesys.proxy.rules import RuleError

    name = check_name(name)
    require_text("file", file, allow_empty=True)
    try:
        converted = from_fiddler(list(rules))
        if file:
            converted += from_fiddler(read_fiddler_file(file))
    except RuleError as error:
        raise ActivityFailed(str(error)) from None
    except TypeError:
        raise ActivityFailed(f"rules must be a list of Fiddler rules, got {rules!r:.120}") from None
    if not converted:
        raise ActivityFailed("no enabled Fiddler rule given (rules and file are both empty)")
    return {"added": _add(name, converted)}


def clear_rules(
    name: str = "default",
    rule_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Remove every rule of proxy ``name`` (or only ``rule_id``); the proxy keeps running.

    Returns the removed rules with their final counters.

    ```json
    {"type": "action", "name": "clear-proxy-rules",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.actions",
                  "func": "clear_rules", "arguments": {"name": "desktop"}}}
    ```
    """
    from chaosgenesys.proxy import control

    name = check_name(name)
    require_text("rule_id", rule_id, allow_empty=True)
    if rule_id and not re.fullmatch(r"[A-Za-z0-9_.-]+", rule_id):
        raise ActivityFailed(f"rule_id must be a rule id such as 'r1', got {rule_id!r}")
    path = f"/rules/{rule_id}" if rule_id else "/rules"
    return control.call(name, "DELETE", path)
