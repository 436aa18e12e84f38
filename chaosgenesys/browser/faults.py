"""Faults through the browser's DevTools protocol: no root, no CA, any OS.

Each fault acts on one page of a Chromium-based browser (Chrome, Edge, an Electron or CEF shell)
reached through its DevTools endpoint. ``devtools_url`` and ``page_url_pattern`` name them; left
empty, they are taken from this run's browser observer (the fault registry's ``browser-observer``
record, started by ``chaosgenesys.browser.actions.start_observer``).

A fault that lasts (every one but :func:`close_browser_websockets`) is held by a detached
process, ``python -m chaosgenesys.browser.fault_holder``, that keeps the DevTools session open
for the fault's ``duration`` (a DevTools setting ends with its session). It is recorded in the
fault registry (kind ``browser-fault``) before it starts, and reverted (the holder stopped by pid
and start time, which undoes the setting) by the rollback's :func:`clear_browser_faults`, the
kill switch's ``revert_all``, ``chaosgenesys cleanup``, its own deadline, and the registry's
guardian when the run that made it dies. The activity returns once the fault is in force.

This module holds the activities; :mod:`chaosgenesys.browser.fault_args` checks their
arguments, :mod:`chaosgenesys.browser.held_faults` records and starts a lasting fault's holder
(and reverts it), :mod:`chaosgenesys.browser.page_sockets` closes sockets from the page.
Every fault speaks CDP itself (:mod:`chaosgenesys.browser.cdp`, no Playwright); this module
stays light.
"""

import re
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.browser.fault_args import (
    MAX_DELAY_MS,
    check_duration,
    check_number,
    check_pattern,
    find_target,
)
from chaosgenesys.browser.fault_args import OBSERVER_KIND as OBSERVER_KIND
from chaosgenesys.browser.held_faults import KIND as KIND
from chaosgenesys.browser.held_faults import hold, stop_and_count
from chaosgenesys.browser.held_faults import revert as revert
from chaosgenesys.browser.page_sockets import close_in_page

__all__ = [
    "KIND",
    "OBSERVER_KIND",
    "block_websocket_handshakes",
    "clear_browser_faults",
    "close_browser_websockets",
    "delay_browser_requests",
    "emulate_network",
    "fail_browser_requests",
    "revert",
]

#: Close codes a page may send (the WebSocket API refuses any other: 1005, 1006 and 1015 are
#: reserved for the browser to report, never to send).
_SENDABLE = "1000 or 3000-4999"


def _check_close(code_name: str, code: Any, reason_name: str, reason: Any) -> None:
    """A close code a page may send and a reason that fits a close frame, or ActivityFailed
    naming the argument."""
    if (
        not isinstance(code, int) or isinstance(code, bool)
        or not (code == 1000 or 3000 <= code <= 4999)
    ):
        hint = (
            " (1006 is what the browser reports for a connection lost without a close frame; "
            "a page cannot send it: see docs/browser.md)"
            if code in (1005, 1006, 1015) else ""
        )
        raise ActivityFailed(f"{code_name} must be {_SENDABLE}, got {code!r}{hint}")
    if not isinstance(reason, str) or len(reason.encode()) > 123:
        raise ActivityFailed(
            f"{reason_name} must be a string of at most 123 bytes, got {reason!r}"
        )


# -- activities --------------------------------------------------------------------------------


def delay_browser_requests(
    url_pattern: str,
    delay_ms: int,
    duration: float,
    devtools_url: str = "",
    page_url_pattern: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Hold the page's REST requests (XHR and fetch) whose URL ``url_pattern`` searches for
    ``delay_ms`` milliseconds (0-600000) before they go out, for ``duration`` seconds.

    Through the DevTools ``Fetch`` domain: every other request, and preflights, pass at once.
    Returns ``{"id", "kind": "delay", "url_pattern", "delay_ms", "duration", "page", "pid"}``
    once the fault is in force.

    ```json
    {"type": "action", "name": "presence-calls-slow-in-the-browser",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "delay_browser_requests",
                  "arguments": {"url_pattern": "/api/v2/users/.*/presences",
                                "delay_ms": 3000, "duration": 60}}}
    ```
    """
    pattern = check_pattern(url_pattern)
    delay = int(check_number("delay_ms", delay_ms, 0, MAX_DELAY_MS, whole=True))
    seconds = check_duration(duration)
    devtools, page, ws_url = find_target(devtools_url, page_url_pattern)
    return hold(
        "delay", f"browser requests matching {pattern!r} delayed {delay} ms", pattern,
        {"delay_ms": delay}, seconds, devtools, page, ws_url,
    )


def fail_browser_requests(
    url_pattern: str,
    status: int,
    duration: float,
    devtools_url: str = "",
    page_url_pattern: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Answer the page's REST requests (XHR and fetch) whose URL ``url_pattern`` searches with
    HTTP ``status`` (400-599) and a Genesys Cloud error body (``message``, ``code``,
    ``status``, ``contextId``, ...; 429/503/504 with ``Retry-After: 1``) for ``duration``
    seconds, without sending them.

    The answer carries CORS headers for the requesting origin, so the desktop's code reads the
    status rather than a network error. Returns ``{"id", "kind": "fail", "url_pattern",
    "status", "duration", "page", "pid"}`` once the fault is in force.

    ```json
    {"type": "action", "name": "presence-calls-fail-503-in-the-browser",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "fail_browser_requests",
                  "arguments": {"url_pattern": "/api/v2/users/.*/presences",
                                "status": 503, "duration": 30}}}
    ```
    """
    pattern = check_pattern(url_pattern)
    code = int(check_number("status", status, 400, 599, whole=True))
    seconds = check_duration(duration)
    devtools, page, ws_url = find_target(devtools_url, page_url_pattern)
    return hold(
        "fail", f"browser requests matching {pattern!r} answered {code}", pattern,
        {"status": code}, seconds, devtools, page, ws_url,
    )


def block_websocket_handshakes(
    url_pattern: str,
    duration: float,
    devtools_url: str = "",
    page_url_pattern: str = "",
    close_code: int = 0,
    close_reason: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Refuse the handshake of every new WebSocket whose URL ``url_pattern`` searches, opened
    by the page (its frames, its dedicated workers) during the next ``duration`` seconds; open
    sockets are left alone.

    The page sees what it sees when the service refuses the upgrade: ``error``, then ``close``
    with code 1006, and its own reconnect logic runs; the real endpoint never sees the
    handshake (the socket goes to the same host, on a path its server refuses). How, and why
    not ``Network.setBlockedURLs``: docs/browser.md. Libraries that keep their own reference to
    ``WebSocket`` (the official streaming client does) are reached when the page loaded while a
    browser observer watched it (``start_observer``: ``open_url``, or ``reload_page``); on a
    page loaded before, only code that builds its sockets with the page's ``WebSocket`` at the
    time is. The result's ``"reaches_libraries"`` says which. The page's dedicated workers and
    its service workers have their own ``WebSocket``: the refusals are in force in each
    (``"workers"``: how many there were when it returned; those that start later get them too).

    ``close_code`` (1000 or 3000-4999; 0, the default, leaves open sockets alone) also closes,
    from the page, its open WebSockets that ``url_pattern`` searches, with that code and
    ``close_reason``, the moment the refusals are in force: the guide's severed signalling
    channel in one step, the desktop's every reconnect try within ``duration`` refused however
    busy the machine (``close_browser_websockets`` as the next action comes later, by as long as
    the run takes to reach it: a delay the desktop's first try can fall outside the window by).
    Returns ``{"id", "kind": "block", "url_pattern", "duration", "page", "pid",
    "reaches_libraries", "workers"}`` once the fault is in force, with ``"close_code"``,
    ``"close_reason"`` and ``"closed"`` (the URLs closed, without query) when it closed sockets.

    ```json
    {"type": "action", "name": "streaming-socket-closed-and-handshakes-refused-for-30s",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "block_websocket_handshakes",
                  "arguments": {"url_pattern": "streaming\\\\.", "duration": 30,
                                "close_code": 4000}}}
    ```
    """
    pattern = check_pattern(url_pattern)
    seconds = check_duration(duration)
    params: dict[str, Any] = {}
    if close_code != 0:
        _check_close("close_code", close_code, "close_reason", close_reason)
        params = {"close_code": close_code, "close_reason": close_reason}
    elif close_reason != "":
        raise ActivityFailed(
            f"close_reason needs a close_code (1000 or 3000-4999), got close_reason="
            f"{close_reason!r} with close_code=0"
        )
    devtools, page, ws_url = find_target(devtools_url, page_url_pattern)
    return hold(
        "block", f"browser WebSocket handshakes matching {pattern!r} refused", pattern, params,
        seconds, devtools, page, ws_url,
    )


def emulate_network(
    offline: bool = False,
    latency_ms: float = 0,
    download_kbps: float = 0,
    upload_kbps: float = 0,
    duration: float = 60.0,
    devtools_url: str = "",
    page_url_pattern: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Chromium's network-condition emulation on the page for ``duration`` seconds: ``offline``,
    ``latency_ms`` added to each request (0-60000), ``download_kbps``/``upload_kbps``
    throughput caps in kilobits per second (0: no cap). At least one condition.

    It applies to HTTP requests and to the handshakes of new WebSockets (offline: refused);
    WebSockets already open and WebRTC media ignore it (docs/browser.md). Returns
    ``{"id", "kind": "emulate", "url_pattern": "", "offline", "latency_ms", "download_kbps",
    "upload_kbps", "duration", "page", "pid"}`` once in force.

    ```json
    {"type": "action", "name": "desktop-on-a-slow-link",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "emulate_network",
                  "arguments": {"latency_ms": 400, "download_kbps": 512,
                                "upload_kbps": 256, "duration": 60}}}
    ```
    """
    if not isinstance(offline, bool):
        raise ActivityFailed(f"offline must be true or false, got {offline!r}")
    latency = check_number("latency_ms", latency_ms, 0, 60_000)
    down = check_number("download_kbps", download_kbps, 0, 10_000_000)
    up = check_number("upload_kbps", upload_kbps, 0, 10_000_000)
    seconds = check_duration(duration)
    if not (offline or latency or down or up):
        raise ActivityFailed(
            "emulate_network needs a condition: offline=true, latency_ms, download_kbps or "
            "upload_kbps above 0, got none"
        )
    devtools, page, ws_url = find_target(devtools_url, page_url_pattern)
    conditions = {
        "offline": offline,
        "latency": latency,
        "downloadThroughput": down * 1000 / 8 if down else -1,
        "uploadThroughput": up * 1000 / 8 if up else -1,
    }
    shown = "offline" if offline else f"latency {latency:g} ms, down {down:g} / up {up:g} kbps"
    return hold(
        "emulate", f"browser network emulation ({shown})", "",
        {"offline": offline, "latency_ms": latency, "download_kbps": down, "upload_kbps": up,
         "conditions": conditions},
        seconds, devtools, page, ws_url,
    )


def close_browser_websockets(
    url_pattern: str,
    code: int = 1000,
    reason: str = "",
    devtools_url: str = "",
    page_url_pattern: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Close now, from the page, its open WebSockets whose URL ``url_pattern`` searches, with
    close ``code`` (1000 or 3000-4999: all the WebSocket API lets a page send) and ``reason``
    (at most 123 bytes).

    The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page,
    each of its frames and each of its dedicated workers; ``close(code, reason)`` sends a close
    frame, the server sees the code and the page's own reconnect logic runs. A drop *without* a
    close frame (1006) cannot be made from the page: see docs/browser.md for what does it. Returns
    ``{"closed": [URLs without query], "code", "page"}``.

    ```json
    {"type": "action", "name": "close-the-streaming-socket-4001",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "close_browser_websockets",
                  "arguments": {"url_pattern": "streaming\\\\.", "code": 4001}}}
    ```
    """
    pattern = re.compile(check_pattern(url_pattern))
    _check_close("code", code, "reason", reason)
    devtools, page_pattern_text, ws_url = find_target(devtools_url, page_url_pattern)
    return close_in_page(ws_url, page_pattern_text, pattern, code, reason, devtools)


def clear_browser_faults(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Revert every browser fault of this run (stop their holders); idempotent. Returns
    ``{"reverted": [ids], "hits": {id: {"matched": n, "passed": n}}}``: what each fault hit
    in all (as ``chaosgenesys.browser.probes.browser_faults`` counts it; ``null`` for an
    ``emulate`` fault). The rollback of any experiment that breaks the browser.

    ```json
    {"type": "action", "name": "clear-browser-faults",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "clear_browser_faults"}}
    ```
    """
    from chaosgenesys.faults import registry

    reverted: list[str] = []
    hits: dict[str, Any] = {}
    for fault in registry.mine(kind=KIND):
        # stopped first, the holder writes its last figures; the revert then finds it gone
        figures = stop_and_count(fault.spec)
        if registry.revert(fault.id):
            reverted.append(fault.id)
            hits[fault.id] = figures
    return {"reverted": reverted, "hits": hits}
