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

Playwright is imported by the holder only; this module stays light.
"""


import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.browser.devtools import page_pattern, shown_url, websocket_url

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

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

KIND = "browser-fault"
OBSERVER_KIND = "browser-observer"
REVERTER = "chaosgenesys.browser.faults:revert"
#: Longest fault, in seconds (a day): a fault is always bounded.
MAX_DURATION = 86_400.0
MAX_DELAY_MS = 600_000
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
#: Close codes a page may send (the WebSocket API refuses any other: 1005, 1006 and 1015 are
#: reserved for the browser to report, never to send).
_SENDABLE = "1000 or 3000-4999"


# -- arguments ---------------------------------------------------------------------------------


def _pattern(url_pattern: Any) -> str:
    if not isinstance(url_pattern, str) or not url_pattern:
        raise ActivityFailed(
            f"url_pattern must be a regular expression searched in request URLs, "
            f"got {url_pattern!r}"
        )
    try:
        re.compile(url_pattern)
    except re.error as error:
        raise ActivityFailed(
            f"url_pattern {url_pattern!r} is not a regular expression: {error}"
        ) from None
    return url_pattern


def _number(name: str, value: Any, low: float, high: float, *, whole: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and whole and isinstance(value, float) and not value.is_integer():
        ok = False
    if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:
        kind = "an integer" if whole else "a number"
        raise ActivityFailed(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _duration(duration: Any) -> float:
    value = _number("duration", duration, 0, MAX_DURATION)
    if value <= 0:
        raise ActivityFailed(
            f"duration must be a number of seconds above 0 (at most {MAX_DURATION:g}), "
            f"got {duration!r}"
        )
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ActivityFailed(f"{name} must be a string, got {value!r}")
    return value.strip()


def _target(devtools_url: Any, page_url_pattern: Any) -> tuple[str, str, str]:
    """(devtools_url, page_url_pattern, DevTools WebSocket URL): the arguments, or this run's
    browser observer's when they are empty."""
    devtools = _text("devtools_url", devtools_url)
    pattern = _text("page_url_pattern", page_url_pattern)
    if not devtools or not pattern:
        from chaosgenesys.faults import registry

        observers = registry.mine(kind=OBSERVER_KIND)
        if not observers:
            missing = " and ".join(
                name for name, value in (("devtools_url", devtools), ("page_url_pattern", pattern))
                if not value
            )
            raise ActivityFailed(
                f"{missing} not given and this run has no browser observer: pass "
                f"{missing} or run chaosgenesys.browser.actions.start_observer first"
            )
        spec = observers[-1].spec
        devtools = devtools or str(spec.get("devtools_url") or "")
        pattern = pattern or str(spec.get("page_url_pattern") or "")
    page_pattern(pattern)
    return devtools, pattern, websocket_url(devtools)


# -- the holder --------------------------------------------------------------------------------


def _registry() -> Any:
    from chaosgenesys.faults import registry

    return registry


def _holder_alive(spec: dict[str, Any]) -> bool:
    pid = spec.get("pid")
    if not isinstance(pid, int):
        return False
    alive: bool = _registry().process_alive(pid, spec.get("pid_start"))
    return alive


def _log_tail(state_dir: str, lines: int = 6) -> str:
    with contextlib.suppress(OSError):
        text = (Path(state_dir) / "holder.log").read_text(errors="replace")
        return " | ".join([line for line in text.splitlines() if line.strip()][-lines:])[-1200:]
    return ""


def _hold(
    fault: str,
    description: str,
    url_pattern: str,
    params: dict[str, Any],
    duration: float,
    devtools_url: str,
    page_url_pattern: str,
    ws_url: str,
) -> dict[str, Any]:
    """Record the fault, start its holder, wait until it is in force; the activity's answer."""
    registry = _registry()
    base = Path(registry.registry_dir()) / "browser-faults"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir = tempfile.mkdtemp(prefix=f"{fault}-", dir=base)
    ready_file = os.path.join(state_dir, "ready.json")
    spec: dict[str, Any] = {
        "fault": fault,
        "url_pattern": url_pattern,
        **params,
        "devtools_url": shown_url(devtools_url),
        "page_url_pattern": page_url_pattern,
        "state_dir": state_dir,
        "pid": None,
        "pid_start": None,
    }
    # Until the holder says the fault is in force, the record's deadline leaves it the time to
    # start; then it becomes that moment plus ``duration`` (the holder's own deadline).
    record = registry.record(
        kind=KIND, description=description, reverter=REVERTER, spec=spec,
        duration=duration + START_TIMEOUT,
    )
    with registry.undone_on_failure(record.id):
        config = {
            "fault": fault,
            "fault_id": record.id,
            "url_pattern": url_pattern,
            "params": params,
            "ws_url": ws_url,
            "page_url_pattern": page_url_pattern,
            "deadline": record.deadline,
            "duration": duration,
            "ready_file": ready_file,
        }
        with open(os.path.join(state_dir, "holder.log"), "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "chaosgenesys.browser.fault_holder"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,
                cwd="/",
            )
        spec = {**spec, "pid": process.pid, "pid_start": registry.process_start_time(process.pid)}
        registry.update(record.id, spec=spec)
        assert process.stdin is not None
        process.stdin.write(json.dumps(config).encode())
        process.stdin.close()
        ready = _wait_ready(process, ready_file, state_dir)
        if isinstance(ready.get("deadline"), int | float):
            # the holder counts the window from when the fault was in force: so does the record
            registry.update(record.id, deadline=float(ready["deadline"]))
    # the holder is detached on purpose: keep the Popen object from warning about it
    process.returncode = 0
    answer: dict[str, Any] = {"id": record.id, "kind": fault, "url_pattern": url_pattern}
    answer.update({k: v for k, v in params.items() if k != "conditions"})
    answer.update({"duration": duration, "page": ready.get("page", ""), "pid": process.pid})
    if "reaches_libraries" in ready:
        answer["reaches_libraries"] = bool(ready["reaches_libraries"])
    return answer


def _wait_ready(process: subprocess.Popen[bytes], ready_file: str, state_dir: str) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            ready = json.loads(Path(ready_file).read_text())
            if ready.get("ok"):
                return ready
            raise ActivityFailed(f"the browser fault did not start: {ready.get('error')}")
        if process.poll() is not None:
            tail = _log_tail(state_dir)
            raise ActivityFailed(
                f"the browser fault holder exited ({process.returncode}) before the fault was "
                f"in force{': ' + tail if tail else ''}"
            )
        time.sleep(0.02)
    raise ActivityFailed(f"the browser fault was not in force after {START_TIMEOUT:g} s")


def revert(fault: "FaultRecord") -> None:
    """Fault-registry reverter: stop the holder (SIGTERM: it undoes the setting and detaches;
    SIGKILL after :data:`STOP_TIMEOUT` s: the setting ends with its DevTools session), then
    remove its state folder. Idempotent; works in any process from the record alone."""
    _stop_holder(fault.spec)
    state_dir = fault.spec.get("state_dir")
    base = Path(_registry().registry_dir()) / "browser-faults"
    if isinstance(state_dir, str) and Path(state_dir).parent == base:
        shutil.rmtree(state_dir, ignore_errors=True)


def _stop_holder(spec: dict[str, Any]) -> None:
    if not _holder_alive(spec):
        return
    pid = int(spec["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        _reap(pid)
        if not _holder_alive(spec):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


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
    pattern = _pattern(url_pattern)
    delay = int(_number("delay_ms", delay_ms, 0, MAX_DELAY_MS, whole=True))
    seconds = _duration(duration)
    devtools, page, ws_url = _target(devtools_url, page_url_pattern)
    return _hold(
        "delay", f"browser requests /{pattern}/ delayed {delay} ms", pattern,
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
    pattern = _pattern(url_pattern)
    code = int(_number("status", status, 400, 599, whole=True))
    seconds = _duration(duration)
    devtools, page, ws_url = _target(devtools_url, page_url_pattern)
    return _hold(
        "fail", f"browser requests /{pattern}/ answered {code}", pattern,
        {"status": code}, seconds, devtools, page, ws_url,
    )


def block_websocket_handshakes(
    url_pattern: str,
    duration: float,
    devtools_url: str = "",
    page_url_pattern: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Refuse the handshake of every new WebSocket whose URL ``url_pattern`` searches, opened
    by the page (and its frames) during the next ``duration`` seconds; open sockets are left
    alone.

    The page sees what it sees when the service refuses the upgrade: ``error``, then ``close``
    with code 1006, and its own reconnect logic runs; the real endpoint never sees the
    handshake (the socket goes to the same host, on a path its server refuses). How, and why
    not ``Network.setBlockedURLs``: docs/browser.md. Libraries that keep their own reference to
    ``WebSocket`` (the official streaming client does) are reached when the page loaded while a
    browser observer watched it (``start_observer``: ``open_url``, or ``reload_page``); on a
    page loaded before, only code that builds its sockets with the page's ``WebSocket`` at the
    time is. The result's ``"reaches_libraries"`` says which. Returns ``{"id", "kind": "block",
    "url_pattern", "duration", "page", "pid", "reaches_libraries"}`` once the fault is in force.

    ```json
    {"type": "action", "name": "streaming-handshakes-refused-for-30s",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "block_websocket_handshakes",
                  "arguments": {"url_pattern": "streaming\\\\.", "duration": 30}}}
    ```
    """
    pattern = _pattern(url_pattern)
    seconds = _duration(duration)
    devtools, page, ws_url = _target(devtools_url, page_url_pattern)
    return _hold(
        "block", f"browser WebSocket handshakes /{pattern}/ refused", pattern, {}, seconds,
        devtools, page, ws_url,
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
    latency = _number("latency_ms", latency_ms, 0, 60_000)
    down = _number("download_kbps", download_kbps, 0, 10_000_000)
    up = _number("upload_kbps", upload_kbps, 0, 10_000_000)
    seconds = _duration(duration)
    if not (offline or latency or down or up):
        raise ActivityFailed(
            "emulate_network needs a condition: offline=true, latency_ms, download_kbps or "
            "upload_kbps above 0, got none"
        )
    devtools, page, ws_url = _target(devtools_url, page_url_pattern)
    conditions = {
        "offline": offline,
        "latency": latency,
        "downloadThroughput": down * 1000 / 8 if down else -1,
        "uploadThroughput": up * 1000 / 8 if up else -1,
    }
    shown = "offline" if offline else f"latency {latency:g} ms, down {down:g} / up {up:g} kbps"
    return _hold(
        "emulate", f"browser network emulation ({shown})", "",
        {"offline": offline, "latency_ms": latency, "download_kbps": down, "upload_kbps": up,
         "conditions": conditions},
        seconds, devtools, page, ws_url,
    )


_LIST = """function() { return this.map(s => [s.url, s.readyState]); }"""
_CLOSE = """function(indexes, code, reason) {
  for (const i of indexes) this[i].close(code, reason);
  return indexes.length;
}"""


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

    The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page
    and each of its frames; ``close(code, reason)`` sends a close frame, the server sees the
    code and the page's own reconnect logic runs. A drop *without* a close frame (1006) cannot
    be made from the page: see docs/browser.md for what does it. Returns
    ``{"closed": [URLs without query], "code", "page"}``.

    ```json
    {"type": "action", "name": "close-the-streaming-socket-4001",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "close_browser_websockets",
                  "arguments": {"url_pattern": "streaming\\\\.", "code": 4001}}}
    ```
    """
    pattern = re.compile(_pattern(url_pattern))
    if (
        not isinstance(code, int) or isinstance(code, bool)
        or not (code == 1000 or 3000 <= code <= 4999)
    ):
        hint = (
            " (1006 is what the browser reports for a connection lost without a close frame; "
            "a page cannot send it: see docs/browser.md)"
            if code in (1005, 1006, 1015) else ""
        )
        raise ActivityFailed(f"code must be {_SENDABLE}, got {code!r}{hint}")
    if not isinstance(reason, str) or len(reason.encode()) > 123:
        raise ActivityFailed(f"reason must be a string of at most 123 bytes, got {reason!r}")
    devtools, page_pattern_text, _ = _target(devtools_url, page_url_pattern)
    return _in_thread(lambda: _close(devtools, page_pattern_text, pattern, code, reason))


def _in_thread(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work()`` in a thread of its own: Playwright's sync API refuses a thread that already
    runs an event loop (a caller's own Playwright, an async control)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed back to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="chaosgenesys-browser-close", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: dict[str, Any] = outcome["value"]
    return result


def _close(
    devtools: str, page_pattern_text: str, pattern: re.Pattern[str], code: int, reason: str
) -> dict[str, Any]:
    from chaosgenesys.browser.devtools import connected, find_page

    closed: list[str] = []
    with connected(devtools) as browser:
        page = find_page(browser, page_pattern_text)
        targets: list[Any] = [page]
        targets += [frame for frame in page.frames if frame != page.main_frame]
        for target in targets:
            try:
                session = page.context.new_cdp_session(target)
            except Exception:  # an in-process frame: its sockets are in the page's heap
                continue
            try:
                closed += _close_in(session, pattern, code, reason)
            finally:
                with contextlib.suppress(Exception):
                    session.detach()
        where = shown_url(page.url)
    return {"closed": closed, "code": code, "page": where}


def _close_in(session: Any, pattern: re.Pattern[str], code: int, reason: str) -> list[str]:
    group = {"objectGroup": "chaosgenesys-close"}
    prototype = session.send(
        "Runtime.evaluate", {"expression": "WebSocket.prototype", **group}
    )
    object_id = prototype["result"]["objectId"]
    found = session.send(
        "Runtime.queryObjects", {"prototypeObjectId": object_id, **group}
    )
    sockets = found["objects"]["objectId"]
    listed = session.send(
        "Runtime.callFunctionOn",
        {"objectId": sockets, "functionDeclaration": _LIST, "returnByValue": True},
    )["result"]["value"]
    chosen = [
        index for index, (url, state) in enumerate(listed)
        if state in (0, 1) and pattern.search(str(url))
    ]
    if chosen:
        answer = session.send(
            "Runtime.callFunctionOn",
            {
                "objectId": sockets,
                "functionDeclaration": _CLOSE,
                "arguments": [{"value": chosen}, {"value": code}, {"value": reason}],
                "returnByValue": True,
            },
        )
        if "exceptionDetails" in answer:
            raise ActivityFailed(
                f"close_browser_websockets: the page refused close({code}): "
                f"{answer['exceptionDetails'].get('text', '')}"
            )
    with contextlib.suppress(Exception):
        session.send("Runtime.releaseObjectGroup", group)
    return [shown_url(str(listed[index][0])) for index in chosen]


def clear_browser_faults(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Revert every browser fault of this run (stop their holders); idempotent. Returns
    ``{"reverted": [ids]}``. The rollback of any experiment that breaks the browser.

    ```json
    {"type": "action", "name": "clear-browser-faults",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "clear_browser_faults"}}
    ```
    """
    registry = _registry()
    reverted = [fault.id for fault in registry.mine(kind=KIND) if registry.revert(fault.id)]
    return {"reverted": reverted}
