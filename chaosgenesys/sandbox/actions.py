"""Server-side faults of the embedded sandbox, driven over its admin HTTP surface.

These actions only work against the chaosgenesys sandbox: they talk to ``/sandbox/v1/...`` at
``genesys_api_url`` (no token needed) and refuse with ``ActivityFailed`` when that URL serves no
sandbox admin API. Use them to make the simulated platform slow or failing (``inject_api_fault``),
to expire or revoke every token, to close notification sockets from the server side, to put
a call on an agent (``route_call``) and to tune the platform's reaction to a lost agent session
(``configure_platform``). Importing this module does not import the sandbox server.
"""

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import (
    require_bool,
    require_http_status,
    require_id,
    require_ids,
    require_int,
    require_number,
    require_regex,
    require_text,
)
from chaosgenesys.sandbox.closecodes import close_code_problem

__all__ = [
    "clear_sandbox_faults",
    "close_notification_sockets",
    "configure_platform",
    "disconnect_call",
    "expire_tokens",
    "inject_api_fault",
    "revoke_tokens",
    "route_call",
    "send_socket_closing",
    "set_token_lifetime",
]

ADMIN = "/sandbox/v1"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: Longest delay a fault may add (10 minutes).
MAX_DELAY_MS = 600_000


def _admin_base(configuration: Configuration) -> tuple[str, float, bool | str]:
    """(admin base URL, timeout, TLS verification) from the experiment's configuration."""
    from chaosgenesys.platform.settings import normalize_base_url

    config: dict[str, Any] = dict(configuration or {})
    api = config.get("genesys_api_url")
    if api in (None, ""):
        raise ActivityFailed(
            "sandbox actions need the configuration key genesys_api_url pointing at a "
            "chaosgenesys sandbox (the chaosgenesys.controls.sandbox control sets it)"
        )
    base = normalize_base_url(api, "genesys_api_url")
    timeout = config.get("genesys_timeout", 10.0)
    if isinstance(timeout, str):
        try:
            timeout = float(timeout)
        except ValueError:
            timeout = 10.0
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        timeout = 10.0
    verify = config.get("genesys_verify_tls", True)
    if not isinstance(verify, bool | str):
        verify = True
    return base, float(timeout), verify


def _admin(
    configuration: Configuration, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """Call the admin API and return its JSON answer (``{}`` for an empty one)."""
    from chaosgenesys.platform import http
    from chaosgenesys.platform.errors import parse_error_body

    base, timeout, verify = _admin_base(configuration)
    url = base + ADMIN + path
    response = http.send(method, url, json=body, timeout=timeout, verify=verify)
    if response.status_code in (404, 405) and not _serves_admin_api(base, timeout, verify):
        raise ActivityFailed(
            f"{method} {ADMIN}{path} answered {response.status_code}: genesys_api_url "
            f"{http.safe_url(base)} does not serve the chaosgenesys sandbox admin API; sandbox "
            "actions only work against the sandbox (chaosgenesys sandbox, or the "
            "chaosgenesys.controls.sandbox control)"
        )
    if response.status_code >= 400:
        error = parse_error_body(response.content)
        message = error.get("message") or response.text[:300] or response.reason
        code = f" {error['code']}" if error.get("code") else ""
        raise ActivityFailed(
            f"{method} {ADMIN}{path} failed: {response.status_code}{code}: {message}"
        )
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return {"answer": response.text}


def _serves_admin_api(base: str, timeout: float, verify: bool | str) -> bool:
    """Whether ``base`` is a sandbox (its 404 was about an entity, not a missing admin API)."""
    from chaosgenesys.platform import http

    try:
        response = http.send("GET", base + ADMIN + "/state", timeout=timeout, verify=verify)
    except ActivityFailed:
        return False
    return response.status_code == 200


def _as_dict(answer: Any, key: str) -> dict[str, Any]:
    return answer if isinstance(answer, dict) else {key: answer}


def inject_api_fault(
    path_pattern: str,
    delay_ms: int = 0,
    status: int = 0,
    method: str = "",
    count: int = 0,
    duration: float = 0.0,
    retry_after: int = 1,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Make the sandbox delay and/or fail requests whose path matches ``path_pattern``.

    ``path_pattern`` is a regular expression searched in the request path (``/presences``,
    ``^/oauth/token$``). ``delay_ms`` delays the answer (0-600000), ``status`` answers with that
    HTTP status instead (e.g. 503, 429 with ``Retry-After``); at least one of them is required.
    ``method`` limits the fault to one HTTP method (default any), ``count`` to the first N
    matching requests (default 0: every one), ``duration`` to N seconds (default 0: until
    ``clear_sandbox_faults``). ``retry_after`` is the ``Retry-After`` (seconds) that 429, 503
    and 504 answers carry (default 1). Returns the admin API's answer, e.g.
    ``{"id": "<fault id>", "fault": {...}}``.

    ```json
    {"type": "action", "name": "presence-reads-fail-with-503",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "inject_api_fault",
                  "arguments": {"path_pattern": "/presences", "status": 503,
                                "method": "GET", "duration": 30}}}
    ```
    """
    pattern = require_regex("path_pattern", path_pattern)
    delay = require_int("delay_ms", delay_ms, minimum=0, maximum=MAX_DELAY_MS)
    code = require_http_status("status", status)
    verb = require_text("method", method, allow_empty=True).strip().upper()
    if verb and verb not in _METHODS:
        raise ActivityFailed(
            f"method must be one of {', '.join(_METHODS)} or empty, got {method!r}"
        )
    times = require_int("count", count, minimum=0)
    seconds = require_number("duration", duration, minimum=0.0)
    wait = require_int("retry_after", retry_after, minimum=0, maximum=3600)
    if not delay and not code:
        raise ActivityFailed(
            f"inject_api_fault needs delay_ms > 0 or a status, got delay_ms={delay_ms!r} and "
            f"status={status!r}"
        )
    body = {
        "path_pattern": pattern,
        "delay_ms": delay,
        "status": code or None,
        "method": verb or None,
        "count": times or None,
        "duration": seconds or None,
        "retry_after": wait,
    }
    answer = _as_dict(_admin(configuration, "POST", "/faults", body), "id")
    # what the verdict and the report take for the fault's window (--var changes included)
    answer["duration"] = seconds or None
    return answer


def clear_sandbox_faults(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Remove every fault injected into the sandbox (``DELETE /sandbox/v1/faults``).

    Idempotent: a natural rollback. Returns the admin API's answer (e.g. ``{"cleared": 2}``).

    ```json
    {"type": "action", "name": "clear-sandbox-faults",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "clear_sandbox_faults"}}
    ```
    """
    return _as_dict(_admin(configuration, "DELETE", "/faults"), "cleared")


def expire_tokens(
    client_id: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Expire every access token the sandbox issued (or only ``client_id``'s).

    Clients holding one get 401 ``bad.credentials`` on their next call and must fetch a new
    token: the guide's token-lifecycle trap on demand. Nothing live ends: notification sockets
    stay and an authenticated streaming session stays; the next SASL with an expired token
    fails ``not-authorized`` (the streaming client's ``invalid_token``). Returns the admin API's
    answer, how many tokens were expired (e.g. ``{"count": 3}``).

    ```json
    {"type": "action", "name": "expire-every-token",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "expire_tokens"}}
    ```
    """
    body: dict[str, Any] = {}
    if client_id:
        body["client_id"] = require_id("client_id", client_id)
    return _as_dict(_admin(configuration, "POST", "/tokens/expire", body), "expired")


def revoke_tokens(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Revoke every access token the sandbox issued.

    The notification socket of every channel created with a revoked token gets
    ``v2.system.token_revoked.<channelId>`` (the socket stays open); every streaming session
    that authenticated with one ends with the stream error ``not-authorized``, and its reconnect
    with the same token meets the SASL failure the streaming client calls ``invalid_token``
    (not retried). Returns the admin API's answer, how many tokens were revoked (e.g.
    ``{"count": 3}``).

    ```json
    {"type": "action", "name": "revoke-every-token",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "revoke_tokens"}}
    ```
    """
    return _as_dict(_admin(configuration, "POST", "/tokens/revoke", {}), "revoked")


def set_token_lifetime(
    seconds: int,
    client_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Set the lifetime of tokens the sandbox issues from now on to an OAuth client.

    ``client_id`` defaults to the experiment's own client (from the secrets). Short lifetimes
    (e.g. 120 s) make token-expiry experiments quick. Existing tokens keep their expiry.

    ```json
    {"type": "action", "name": "tokens-live-two-minutes",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "set_token_lifetime", "arguments": {"seconds": 120}}}
    ```
    """
    lifetime = require_int("seconds", seconds, minimum=1, maximum=48 * 3600)
    if client_id:
        target = require_id("client_id", client_id)
    else:
        from chaosgenesys.platform import settings_from

        target = settings_from(configuration, secrets).client_id
    answer = _admin(configuration, "PATCH", f"/clients/{target}", {"token_lifetime": lifetime})
    return _as_dict(answer, "client")


def close_notification_sockets(
    code: int = 1001,
    user_ids: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain list type
    sessions_only: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Close notification WebSockets and streaming sessions from the server side with ``code``.

    Only the sockets of channels subscribed to topics of ``user_ids``, and the streaming
    sessions authenticated as one of them, when given; every socket and session otherwise.
    ``sessions_only`` keeps observers (``watch_events``, a supervisor's wallboard) connected:
    only agent desktop sessions (channels subscribed to a user's conversations, and every
    streaming session) are closed. A streaming session gets a bare WebSocket close with
    ``code`` (no stream error); channels stay, so clients reconnect to the same channel. The
    guide's layer 3: the desktop must reconnect (with backoff) instead of going zombie. Returns
    the admin API's answer (e.g. ``{"closed": 2, "streaming": 1}``: all closed, and how many of
    them were streaming sessions).

    ``code`` is one a server may send: 1000-1003, 1007-1014 or 3000-4999. 1005 and 1006 never
    travel in a Close frame (RFC 6455 7.4.1: a client reports them when no code, or no Close
    frame, arrived) and 1004 is reserved: they are refused. For a client to see 1006, drop the
    connection (``reset_connections`` or a network fault) instead.

    ```json
    {"type": "action", "name": "server-drops-agent-sockets",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "close_notification_sockets",
                  "arguments": {"code": 1001, "user_ids": ["${agent_1}"]}}}
    ```
    """
    close = require_int("code", code, minimum=1000, maximum=4999)
    problem = close_code_problem(close)
    if problem is not None:
        raise ActivityFailed(f"code {close}: {problem}")
    ids = require_ids("user_ids", user_ids) if user_ids else None
    body: dict[str, Any] = {"code": close, "user_ids": ids}
    if require_bool("sessions_only", sessions_only):
        body["sessions_only"] = True
    answer = _admin(configuration, "POST", "/notifications/close", body)
    return _as_dict(answer, "closed")


def send_socket_closing(
    user_ids: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain list type
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Announce maintenance: send ``v2.system.socket_closing`` on notification sockets.

    Streaming sessions get what the streaming client maps it to, the XEP-0051 connection
    transfer (``<iq type="set"><query xmlns="urn:xmpp:cxfr"/></iq>``), and are closed by the
    server if still open a minute later. Clients have about a minute to open a new socket. Only
    ``user_ids``' sockets and sessions when given. Returns the admin API's answer, how many got
    it (e.g. ``{"sent": 2}``).

    ```json
    {"type": "action", "name": "maintenance-announced",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "send_socket_closing"}}
    ```
    """
    ids = require_ids("user_ids", user_ids) if user_ids else None
    answer = _admin(configuration, "POST", "/notifications/socket-closing", {"user_ids": ids})
    return _as_dict(answer, "sent")


def route_call(
    queue_id: str,
    user_id: str = "",
    answer: bool = False,
    conversation_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Put a customer call in a queue; the sandbox routes it to an idle On Queue member.

    ``user_id`` picks the agent (default: any idle On Queue member); ``answer`` connects the
    call at once instead of leaving it alerting. ``conversation_id`` names the conversation
    (default: a new id): Chaos Toolkit cannot hand one activity's output to the next, so an
    experiment that probes the call later (``wrapup_state``, ``disconnect_call``) names it in
    its configuration. Returns ``{"conversation_id": ...}`` plus whatever else the admin API
    answers; use it with the conversation probes.

    ```json
    {"type": "action", "name": "customer-calls-the-chaos-queue",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "route_call",
                  "arguments": {"queue_id": "${chaos_queue}", "user_id": "${agent_1}",
                                "answer": true}}}
    ```
    """
    require_id("queue_id", queue_id)
    body: dict[str, Any] = {"queue_id": queue_id, "answer": require_bool("answer", answer)}
    if user_id:
        body["user_id"] = require_id("user_id", user_id)
    if conversation_id:
        body["conversation_id"] = require_id("conversation_id", conversation_id)
    result = _admin(configuration, "POST", "/calls", body)
    if isinstance(result, str):
        return {"conversation_id": result}
    if isinstance(result, dict):
        return {**result, "conversation_id": result.get("conversation_id") or result.get("id")}
    return {"conversation_id": None, "answer": result}


def disconnect_call(
    conversation_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The customer hangs up: the conversation ends and a connected agent enters after-call work.

    Use it to put an agent in wrap-up before cutting its network (the guide's wrap-up edge
    case). An unknown conversation raises ``ActivityFailed``.

    ```json
    {"type": "action", "name": "customer-hangs-up",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "disconnect_call",
                  "arguments": {"conversation_id": "${conversation_id}"}}}
    ```
    """
    require_id("conversation_id", conversation_id)
    answer = _admin(configuration, "POST", f"/conversations/{conversation_id}/disconnect", {})
    return _as_dict(answer, "disconnected")


def configure_platform(
    session_grace_seconds: float = -1.0,
    presence_renew_seconds: float = -1.0,
    renew_on_queue: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Tune how the sandbox's platform reacts to a lost agent session (docs/platform-reaction.md).

    ``session_grace_seconds``: seconds an agent may be without a notification socket before the
    platform re-routes its alerting calls and logs it off (``Offline``); 0 turns the reaction
    off. ``presence_renew_seconds``: the reconnect window within which a returning agent gets
    its presence back (0: no renewal). ``renew_on_queue`` (``"true"``/``"false"``): whether
    ``On Queue`` is renewed as ``On Queue`` (else ``Available``). ``-1`` or an empty string
    (the defaults) leave that setting as it is; pending grace timers count from the loss.
    Returns the platform view (settings, sessions, pending and past reactions).

    ```json
    {"type": "action", "name": "platform-reacts-after-one-second",
     "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions",
                  "func": "configure_platform",
                  "arguments": {"session_grace_seconds": 1}}}
    ```
    """
    body: dict[str, Any] = {}
    for name, value in (
        ("session_grace_seconds", session_grace_seconds),
        ("presence_renew_seconds", presence_renew_seconds),
    ):
        seconds = require_number(name, value, minimum=-1.0, maximum=86400.0)
        if seconds >= 0:
            body[name] = seconds
        elif seconds != -1.0:
            raise ActivityFailed(f"{name} must be >= 0 seconds (or -1: unchanged), got {value!r}")
    if isinstance(renew_on_queue, bool):
        body["renew_on_queue"] = renew_on_queue
    else:
        flag = require_text("renew_on_queue", renew_on_queue, allow_empty=True).strip().lower()
        if flag in ("true", "yes", "1"):
            body["renew_on_queue"] = True
        elif flag in ("false", "no", "0"):
            body["renew_on_queue"] = False
        elif flag:
            raise ActivityFailed(
                f"renew_on_queue must be true, false or empty (unchanged), got {renew_on_queue!r}"
            )
    if not body:
        raise ActivityFailed(
            "configure_platform needs at least one of session_grace_seconds, "
            "presence_renew_seconds (>= 0) or renew_on_queue"
        )
    return _as_dict(_admin(configuration, "PATCH", "/platform", body), "platform")
