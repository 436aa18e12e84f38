"""The browser observer process: watch one page of a browser over the DevTools protocol.

Run by :func:`chaosgenesys.browser.actions.start_observer` (detached, in a session of its own, so
it outlives the activity; the fault registry stops it)::

    python -m chaosgenesys.browser.observer --dir DIR --devtools-url http://127.0.0.1:9222 \\
        --page-url-pattern '/desktop/' [--selectors JSON] [--api-hosts REGEX] [--duration S] \\
        [--metrics-port PORT]
    python -m chaosgenesys.browser.observer --dir DIR --open-url http://127.0.0.1:8080/desktop/

It attaches with :func:`chaosgenesys.browser.devtools.connected`, waits for the page with
:func:`~chaosgenesys.browser.devtools.find_page`, opens a CDP session on it (plus a
browser-level one that follows its out-of-process iframes and workers) and writes
``DIR/events.jsonl`` (the agents'
:class:`~chaosgenesys.agent.eventlog.EventLog` format; schema in ``docs/browser.md``) and
``DIR/status.json`` (rewritten atomically about 4 times a second). Times of network events are
the browser's own (CDP timestamps brought to wall-clock time), not when the observer heard of
them. No frame payload, query string, header or token is ever written. With
``--metrics-port`` it also serves its figures for Prometheus on 127.0.0.1
(:mod:`chaosgenesys.browser.metrics`, prometheus-client imported only then); ``status.json``'s
``metrics`` says where (``{"port", "url"}``, ``null`` when off).

It ends on SIGTERM, when its owner process is gone, when the browser or the page goes away
(``browser_gone`` / ``page_closed`` events) or after ``--duration`` seconds. Without
``--devtools-url`` it launches the system Chromium headless (``CHAOSGENESYS_CHROMIUM`` or
``/usr/bin/chromium``, a fresh profile, ``--remote-debugging-port=0``), attaches to its blank
page and then opens ``--open-url`` in it; that browser is its child and stops with it. An
observer that ends by itself (duration, browser or page gone) forgets its registry record.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.browser import devtools, ws_guard
from chaosgenesys.browser.runs import process_alive, start_time, write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, CDPSession, Page

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "DEFAULT_SELECTORS",
    "ENV_CHROMIUM",
    "chromium_path",
    "default_api_match",
    "main",
    "redact",
]

ENV_CHROMIUM = "CHAOSGENESYS_CHROMIUM"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]
#: The UI read by default: the presence label and the connection banner.
DEFAULT_SELECTORS = {"presence": '[data-cg="presence"]', "connection": '[data-cg="connection"]'}
#: Genesys Cloud hosts whose requests are REST calls whatever their path.
GENESYS_HOSTS = re.compile(r"(^|\.)(mypurecloud\.[a-z.]+|pure\.cloud)$", re.IGNORECASE)
POLL_S = 0.25
#: The path of the token endpoint: the observer notes each token's expiry from its answer.
TOKEN_PATH = "/oauth/token"
#: Why an observer ends when nobody stopped it (it then forgets its own registry record).
ENDED_BY_ITSELF = ("duration", "browser_gone", "page_closed")
TEXT_LIMIT = 500

_SECRETS = [
    (re.compile(r"((?:https?|wss?)://[^\s?#'\"]+)[?#][^\s'\"]*"), r"\1?[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)\b(access_token|id_token|refresh_token|client_secret|code|token)="
                   r"[^&\s\"'#]+"),
        r"\1=[redacted]",
    ),
    (
        re.compile(r"(?i)(\"?)(access_token|id_token|refresh_token|client_secret|token)\1"
                   r"(\s*:\s*)(\"[^\"]*\"|[^\s,;}]+)"),
        r"\1\2\1\3[redacted]",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted]"),
]


def api_url_for(page_url: str, token_host: str) -> str:
    """The API base URL that takes the tokens of ``token_host`` (``login.<env>`` →
    ``https://api.<env>``; a sandbox's own host is its API too)."""
    scheme = urlsplit(page_url).scheme or "https"
    if token_host.startswith("login."):
        return f"https://api.{token_host[len('login.'):]}"
    return f"{scheme}://{token_host}"


def redact(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` with URL queries and fragments, bearer tokens, ``access_token=…`` style values
    and JWTs replaced, cut to ``limit`` characters."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def default_api_match(url: str, page_url: str) -> bool:
    """Whether ``url`` is a REST call by default: the page's own origin's ``/api/`` and
    ``/oauth/`` paths, and any ``*.mypurecloud.*`` or ``*.pure.cloud`` host."""
    parts, page = urlsplit(url), urlsplit(page_url)
    if parts.scheme not in ("http", "https"):
        return False
    if GENESYS_HOSTS.search(parts.hostname or ""):
        return True
    same_origin = (parts.scheme, parts.netloc) == (page.scheme, page.netloc)
    return same_origin and parts.path.startswith(("/api/", "/oauth/"))


def chromium_path() -> str:
    """The Chromium to launch: ``CHAOSGENESYS_CHROMIUM``, else ``/usr/bin/chromium``."""
    return os.environ.get(ENV_CHROMIUM, "").strip() or CHROMIUM


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """``preexec_fn`` for a child that must not outlive the thread that starts it (Linux's
    ``PR_SET_PDEATHSIG``: SIGKILL when that thread ends; start it from a long-lived thread)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LaunchedBrowser:
    """A headless Chromium the observer started, in a session of its own."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="chaosgenesys-observer-")
        self.process = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.pid = self.process.pid
        self.start_time = start_time(self.pid)
        self.ws_url = ""
        stderr = self.process.stderr
        assert stderr is not None
        found = threading.Event()

        def drain() -> None:
            for raw in stderr:
                if not self.ws_url:
                    match = re.search(rb"DevTools listening on (ws://\S+)", raw)
                    if match:
                        self.ws_url = match.group(1).decode("ascii", "replace")
                        found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        found.wait(timeout)
        if not self.ws_url:
            self.stop()
            raise ActivityFailed(
                f"open_url: the browser {chromium_path()!r} did not open its DevTools port "
                f"(set {ENV_CHROMIUM} to a Chromium, Chrome or Edge binary)"
            )

    def stop(self) -> None:
        """Stop the browser and its helpers; remove its profile."""
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)


UI_SCRIPT = """(selectors) => {
  const out = {};
  for (const [name, selector] of Object.entries(selectors)) {
    let el = null;
    try { el = document.querySelector(selector); }
    catch (e) { out[name] = {bad: String(e)}; continue; }
    out[name] = {value: el ? el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 200) : null};
  }
  return out;
}"""

#: One read per poll: the UI labels and whether the WebSocket guard is resident in the page.
POLL_SCRIPT = f"(selectors) => ({{ui: ({UI_SCRIPT})(selectors), guard: {ws_guard.IS_RESIDENT}}})"


class Observer:
    """The CDP event handlers and the state written to ``status.json``."""

    def __init__(self, folder: Path, api_hosts: str, selectors: dict[str, str]) -> None:
        self.folder = folder
        self.log = EventLog(folder / "events.jsonl")
        self.api = re.compile(api_hosts) if api_hosts else None
        self.selectors = selectors
        self.page: Page | None = None
        self.label = "page"
        self.page_url = ""
        self.offset = time.time() - time.monotonic()  # wall - CDP monotonic, until calibrated
        self.calibrated = False
        self.sockets: dict[str, str] = {}  # ws id -> url, created but not yet written
        self.open_sockets: set[str] = set()
        self.seen_sockets: set[str] = set()
        self.refused_sockets: set[str] = set()  # handshakes block_websocket_handshakes refused
        self.token_responses: list[tuple[str, float, str]] = []  # /oauth/token answers to read
        #: Only in a browser the observer launched: (API base URL, token) of each token the page
        #: obtained, in memory only, revoked when the observer stops.
        self.keep_tokens = False
        self.session_tokens: list[tuple[str, str]] = []
        self.requests: dict[str, dict[str, Any]] = {}
        self.ui: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.frames_followed: set[str] = set()
        self.sessions: list[CDPSession] = []
        self.page_target: tuple[CDPSession, str] | None = None
        self.workers: dict[str, str] = {}  # child session id -> request id prefix
        self.command_id = 0
        self.resume_when_answered: dict[str, set[int]] = {}  # child -> commands unanswered
        self.ended = ""
        self.status: dict[str, Any] = {"attached": False, "pid": os.getpid()}

    # -- writing -----------------------------------------------------------------------------

    def wall(self, timestamp: Any) -> float:
        """A CDP monotonic timestamp (seconds) as epoch seconds (now when there is none)."""
        if isinstance(timestamp, int | float) and timestamp > 0:
            moment = float(timestamp) + self.offset
            if abs(moment - time.time()) < 60:
                return moment
        return time.time()

    def calibrate(self, params: dict[str, Any]) -> None:
        wall, mono = params.get("wallTime"), params.get("timestamp")
        if isinstance(wall, int | float) and isinstance(mono, int | float) and wall > 0:
            self.offset = float(wall) - float(mono)
            self.calibrated = True

    def write(self, event: str, ts: float | None = None, **fields: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if ts is None:
            self.log.write(self.label, event, **fields)
            return
        stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        self.log.write(self.label, event, ts=round(ts, 3), time=stamp, **fields)

    def write_status(self, **changes: Any) -> None:
        self.status.update(changes)
        self.status.update(
            updated_at=time.time(), page_url=self.page_url, ui=dict(self.ui),
            counts=dict(self.counts), open_websockets=len(self.open_sockets),
            frames_followed=len(self.frames_followed), ended=self.ended,
        )
        write_json_atomic(self.folder / "status.json", self.status)

    # -- WebSockets --------------------------------------------------------------------------

    def _created(self, ws: str, ts: float) -> None:
        url = self.sockets.pop(ws, None)
        if url is None and ws not in self.seen_sockets:
            # Opened before the observer attached: its URL is unknown (CDP lists no sockets).
            url = ""
        if url is not None:
            self.seen_sockets.add(ws)
            self.open_sockets.add(ws)
            if ws in self.refused_sockets:
                self.write("ws_created", ts, ws=ws, url=url, refused_by_fault=True)
            else:
                self.write("ws_created", ts, ws=ws, url=url)

    def on_ws_created(self, params: dict[str, Any]) -> None:
        ws, url = str(params.get("requestId")), str(params.get("url"))
        asked = ws_guard.asked_url(url)
        if asked is not None:  # block_websocket_handshakes sent it elsewhere: say what it was
            self.refused_sockets.add(ws)
            url = asked
        self.sockets[ws] = devtools.shown_url(url)
        self.seen_sockets.add(ws)

    def on_ws_request(self, params: dict[str, Any]) -> None:
        self.calibrate(params)
        self._created(str(params.get("requestId")), self.wall(params.get("timestamp")))

    def on_ws_handshake(self, params: dict[str, Any]) -> None:
        ws, ts = str(params.get("requestId")), self.wall(params.get("timestamp"))
        self._created(ws, ts - 0.001)
        status = (params.get("response") or {}).get("status")
        self.write("ws_handshake", ts, ws=ws, status=status)

    def _frame(self, params: dict[str, Any], direction: str) -> None:
        ws, ts = str(params.get("requestId")), self.wall(params.get("timestamp"))
        self._created(ws, ts - 0.001)
        response = params.get("response") or {}
        payload = str(response.get("payloadData") or "")
        text = response.get("opcode") == 1
        size = len(payload.encode("utf-8")) if text else len(payload) * 3 // 4
        self.write("ws_frame", ts, ws=ws, dir=direction, size=size)

    def on_frame_in(self, params: dict[str, Any]) -> None:
        self._frame(params, "in")

    def on_frame_out(self, params: dict[str, Any]) -> None:
        self._frame(params, "out")

    def on_frame_error(self, params: dict[str, Any]) -> None:
        ws, ts = str(params.get("requestId")), self.wall(params.get("timestamp"))
        self._created(ws, ts - 0.001)
        self.write("ws_frame_error", ts, ws=ws, error=redact(str(params.get("errorMessage")), 200))

    def on_ws_closed(self, params: dict[str, Any]) -> None:
        ws, ts = str(params.get("requestId")), self.wall(params.get("timestamp"))
        self._created(ws, ts - 0.001)
        self.open_sockets.discard(ws)
        self.write("ws_closed", ts, ws=ws)

    # -- REST --------------------------------------------------------------------------------

    def is_api(self, url: str) -> bool:
        if self.api is not None:
            return urlsplit(url).scheme in ("http", "https") and bool(
                self.api.search(devtools.shown_url(url))
            )
        return default_api_match(url, self.page_url or (self.page.url if self.page else ""))

    def _rest(self, request: dict[str, Any], ts: float, status: Any, **extra: Any) -> None:
        latency = round((ts - request["start"]) * 1000, 1)
        self.write("rest", ts, method=request["method"], host=request["host"],
                   path=request["path"], status=status, latency_ms=latency, **extra)

    def on_request(self, params: dict[str, Any]) -> None:
        self.calibrate(params)
        rid = str(params.get("requestId"))
        ts = self.wall(params.get("timestamp"))
        redirect = params.get("redirectResponse")
        if isinstance(redirect, dict) and rid in self.requests:
            self._rest(self.requests.pop(rid), ts, redirect.get("status"))
        request = params.get("request") or {}
        url = str(request.get("url") or "")
        if not self.is_api(url):
            return
        parts = urlsplit(url)
        self.requests[rid] = {
            "method": str(request.get("method") or ""), "host": parts.netloc,
            "path": parts.path or "/", "start": ts, "status": None,
        }

    def on_response(self, params: dict[str, Any]) -> None:
        request = self.requests.get(str(params.get("requestId")))
        if request is not None:
            request["status"] = (params.get("response") or {}).get("status")

    def on_finished(self, params: dict[str, Any]) -> None:
        rid = str(params.get("requestId"))
        request = self.requests.pop(rid, None)
        if request is not None:
            ts = self.wall(params.get("timestamp"))
            self._rest(request, ts, request["status"])
            if (request["path"].endswith(TOKEN_PATH) and request["status"] == 200
                    and ":" not in rid):  # the page's own session can read the body
                self.token_responses.append((rid, ts, request["host"]))

    def read_tokens(self, session: CDPSession) -> None:
        """Note when each access token the page obtained expires (``token`` events): the
        ``expires_in`` of its ``/oauth/token`` answer, read from the browser. The token itself
        is never written; in a browser the observer launched (a session the run logged in) it
        is kept in memory to be revoked at the end (:meth:`revoke_tokens`)."""
        while self.token_responses:
            rid, ts, host = self.token_responses.pop(0)
            try:
                answer = session.send("Network.getResponseBody", {"requestId": rid})
                body = answer.get("body") or ""
                if answer.get("base64Encoded"):
                    body = base64.b64decode(body).decode("utf-8", "replace")
                data = json.loads(body)
                lifetime = data.get("expires_in")
            except Exception:  # evicted from the browser's buffer, or not JSON: no figure
                continue
            if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
                expires_at = round(ts + float(lifetime), 3)
                self.write("token", ts, expires_in=lifetime, expires_at=expires_at)
                self.status["token_expires_at"] = expires_at
            token = data.get("access_token")
            if self.keep_tokens and isinstance(token, str) and token:
                self.session_tokens.append((api_url_for(self.page_url, host), token))

    def revoke_tokens(self) -> None:
        """Revoke every token the page obtained in the browser the observer launched, and
        check each no longer works (``tokens_revoked`` event; ``status.json``). The run is
        over: no session it logged in outlives it (the guide's PCI-DSS trap)."""
        from chaosgenesys.revocation import revoke_token

        tokens, self.session_tokens = self.session_tokens, []
        if not tokens:
            return
        revoked = still = 0
        problems: list[str] = []
        for api_url, token in tokens:
            done = revoke_token(api_url, token, timeout=5.0)
            revoked += done.revoked
            still += done.still_works
            if done.detail and done.detail not in problems:
                problems.append(redact(done.detail, 200))
        self.write("tokens_revoked", count=len(tokens), revoked=revoked, still_working=still,
                   problems=problems)
        self.write_status(tokens_revoked=revoked, tokens_still_working=still,
                          token_problems=problems)

    def on_failed(self, params: dict[str, Any]) -> None:
        request = self.requests.pop(str(params.get("requestId")), None)
        if request is not None:
            error = redact(str(params.get("errorText") or ""), 200)
            self._rest(request, self.wall(params.get("timestamp")), request["status"] or 0,
                       error=error)

    # -- console -----------------------------------------------------------------------------

    def _console(self, level: str, text: str, epoch_ms: Any, source: str) -> None:
        ts = float(epoch_ms) / 1000 if isinstance(epoch_ms, int | float) and epoch_ms else None
        self.write("console", ts, level=level, source=source, text=redact(text))

    def on_console_api(self, params: dict[str, Any]) -> None:
        kind = params.get("type")
        level = {"error": "error", "assert": "error", "warning": "warning"}.get(str(kind))
        if level is None:
            return
        parts = []
        for arg in params.get("args") or []:
            value = arg.get("value", arg.get("description", arg.get("type", "")))
            parts.append(value if isinstance(value, str) else json.dumps(value))
        self._console(level, " ".join(parts), params.get("timestamp"), "console")

    def on_exception(self, params: dict[str, Any]) -> None:
        details = params.get("exceptionDetails") or {}
        text = str((details.get("exception") or {}).get("description") or details.get("text"))
        self._console("error", text, params.get("timestamp"), "exception")

    def on_log_entry(self, params: dict[str, Any]) -> None:
        entry = params.get("entry") or {}
        level = entry.get("level")
        if level in ("error", "warning"):
            self._console(str(level), str(entry.get("text") or ""), entry.get("timestamp"),
                          str(entry.get("source") or "log"))

    # -- attaching ---------------------------------------------------------------------------

    HANDLERS: ClassVar[dict[str, str]] = {
        "Network.webSocketCreated": "on_ws_created",
        "Network.webSocketWillSendHandshakeRequest": "on_ws_request",
        "Network.webSocketHandshakeResponseReceived": "on_ws_handshake",
        "Network.webSocketFrameReceived": "on_frame_in",
        "Network.webSocketFrameSent": "on_frame_out",
        "Network.webSocketFrameError": "on_frame_error",
        "Network.webSocketClosed": "on_ws_closed",
        "Network.requestWillBeSent": "on_request",
        "Network.responseReceived": "on_response",
        "Network.loadingFinished": "on_finished",
        "Network.loadingFailed": "on_failed",
        "Runtime.consoleAPICalled": "on_console_api",
        "Runtime.exceptionThrown": "on_exception",
        "Log.entryAdded": "on_log_entry",
    }

    def follow(self, target: Page) -> CDPSession:
        """A CDP session on the page with every handler on and the Network, Runtime and Log
        domains enabled."""
        assert self.page is not None
        session = self.page.context.new_cdp_session(target)
        for event, name in self.HANDLERS.items():
            session.on(event, getattr(self, name))
        session.send("Network.enable")
        session.send("Runtime.enable")
        session.send("Log.enable")
        # every document the page loads from now on starts with the WebSocket guard resident,
        # before its own scripts: block_websocket_handshakes then reaches libraries that copy
        # the constructor when they load (chaosgenesys.browser.ws_guard)
        session.send("Page.enable")  # (Chromium runs a session's new-document scripts only then)
        session.send("Page.addScriptToEvaluateOnNewDocument", {"source": ws_guard.RESIDENT})
        self.sessions.append(session)
        return session

    def reload(self, timeout: float) -> None:
        """Reload the page, so that its scripts load with the WebSocket guard resident."""
        assert self.page is not None
        try:
            self.page.reload(wait_until="domcontentloaded", timeout=timeout * 1000)
        except Exception as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ActivityFailed(
                f"reload_page: {devtools.shown_url(self.page.url)} did not load again: "
                f"{redact(first, 200)}"
            ) from None

    def open(self, url: str, pattern: str, timeout: float) -> None:
        """Open ``url`` in the (followed) page of a browser the observer launched."""
        assert self.page is not None
        shown = devtools.shown_url(url)
        self.page_url = shown
        try:
            self.page.goto(url, wait_until="domcontentloaded", timeout=15_000)
        except Exception as error:
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ActivityFailed(f"open_url {shown!r} did not load: {redact(first, 200)}") from None
        compiled = devtools.page_pattern(pattern)
        deadline = time.monotonic() + timeout
        while not compiled.search(self.page.url):  # a login may redirect it there and back
            if time.monotonic() >= deadline:
                raise ActivityFailed(
                    f"page_url_pattern {pattern!r} does not match the page open_url opened "
                    f"({devtools.shown_url(self.page.url)}) after {timeout:g} s"
                )
            self.page.wait_for_timeout(100)
        self.page_url = devtools.shown_url(self.page.url)

    def follow_children(self, browser: Browser, page_session: CDPSession) -> None:
        """Follow the page's out-of-process iframes and its workers: a browser-level session
        attached to the page's target (non-flat, so its children's messages come to us and not
        to Playwright) auto-attaches to each child, paused until our domains are on.
        Same-process iframes are in the page's own session already."""
        target = page_session.send("Target.getTargetInfo")["targetInfo"]["targetId"]
        session = browser.new_browser_cdp_session()
        self.sessions.append(session)
        session.on("Target.receivedMessageFromTarget", self.on_page_target_message)
        page_sid = session.send("Target.attachToTarget", {"targetId": target, "flatten": False})
        self.page_target = (session, str(page_sid["sessionId"]))
        self.to_page_target("Target.setAutoAttach", {
            "autoAttach": True, "waitForDebuggerOnStart": True, "flatten": False})

    def to_page_target(self, method: str, params: dict[str, Any], worker: str = "") -> int:
        """Send a command to the page's target, or to one of its children through it; the
        command's id (its answer comes back in a message from the target)."""
        if self.page_target is None:
            return 0
        session, page_sid = self.page_target
        self.command_id += 1
        sent = self.command_id
        message = json.dumps({"id": sent, "method": method, "params": params})
        if worker:
            self.command_id += 1
            message = json.dumps({"id": self.command_id, "method": "Target.sendMessageToTarget",
                                  "params": {"sessionId": worker, "message": message}})
        session.send("Target.sendMessageToTarget", {"sessionId": page_sid, "message": message})
        return sent

    def on_page_target_message(self, params: dict[str, Any]) -> None:
        if self.page_target is None or params.get("sessionId") != self.page_target[1]:
            return
        try:
            message = json.loads(str(params.get("message")))
        except ValueError:
            return
        method, inner = message.get("method"), message.get("params") or {}
        if method == "Target.attachedToTarget":
            info = inner.get("targetInfo") or {}
            child, kind = str(inner.get("sessionId")), str(info.get("type"))
            self.workers[child] = f"t{len(self.workers) + 1}:"
            url = devtools.shown_url(str(info.get("url")))
            if kind == "iframe":  # out of process: its console is not in the page's Log
                self.frames_followed.add(child)
                self.write("frame_followed", url=url)
                commands = [("Network.enable", {}), ("Runtime.enable", {}), ("Log.enable", {}),
                            ("Page.enable", {}), ("Page.addScriptToEvaluateOnNewDocument",
                             {"source": ws_guard.RESIDENT})]
            else:  # a worker's console already comes through the page's Log domain
                self.write("worker", kind=kind, url=url)
                commands = [("Network.enable", {})]
            # The child stays paused until every command has answered: a worker's Network
            # domain lives in the browser process and would miss its first requests otherwise,
            # and a frame's document must not run its scripts before the guard is resident.
            waiting: set[int] = set()
            self.resume_when_answered[child] = waiting
            for method, params in commands:
                with contextlib.suppress(Exception):
                    waiting.add(self.to_page_target(method, params, child))
            self.resume_if_answered(child)  # (Playwright may have resumed a worker already)
        elif method == "Target.receivedMessageFromTarget":
            prefix = self.workers.get(str(inner.get("sessionId")))
            try:
                event = json.loads(str(inner.get("message")))
            except ValueError:
                return
            unanswered = self.resume_when_answered.get(str(inner.get("sessionId")))
            if unanswered is not None and event.get("id") in unanswered:
                unanswered.discard(event["id"])
                self.resume_if_answered(str(inner.get("sessionId")))
                return
            handler = self.HANDLERS.get(str(event.get("method")))
            if prefix is None or handler is None:
                return
            data = dict(event.get("params") or {})
            if "requestId" in data:  # request ids are per target: keep the child's apart
                data["requestId"] = prefix + str(data["requestId"])
            getattr(self, handler)(data)

    def resume_if_answered(self, child: str) -> None:
        """Let a paused child run once the domains it waits for are on."""
        if not self.resume_when_answered.get(child, {0}):
            del self.resume_when_answered[child]
            with contextlib.suppress(Exception):
                self.to_page_target("Runtime.runIfWaitingForDebugger", {}, child)

    def check_selectors(self) -> None:
        """Read the UI once; a selector the page cannot parse fails naming it."""
        assert self.page is not None
        found = self.page.evaluate(UI_SCRIPT, self.selectors)
        bad = {name: item["bad"] for name, item in found.items() if "bad" in item}
        if bad:
            name = sorted(bad)[0]
            raise ActivityFailed(
                f"selectors[{name!r}] {self.selectors[name]!r} is not a CSS selector the page "
                f"accepts: {bad[name]}"
            )
        self.note_ui(found)

    def note_ui(self, found: dict[str, Any]) -> None:
        for name, item in found.items():
            value = item.get("value") if isinstance(item, dict) else None
            if name not in self.ui or self.ui[name] != value:
                self.ui[name] = value
                self.write("ui", name=name, value=value)

    def poll_ui(self) -> None:
        """Read the UI labels and whether the page's WebSocket guard is resident."""
        if self.page is None:
            return
        try:
            found = self.page.evaluate(POLL_SCRIPT, self.selectors)
        except Exception:  # navigating, or going away: the next poll (or the end) tells
            return
        self.note_ui(found["ui"])
        resident = bool(found["guard"])
        if self.status.get("ws_guard_resident") != resident:
            self.status["ws_guard_resident"] = resident
            self.write("ws_guard", resident=resident)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaosgenesys.browser.observer")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--devtools-url", default="")
    parser.add_argument("--open-url", default="")
    parser.add_argument("--page-url-pattern", default="")
    parser.add_argument("--selectors", default="")
    parser.add_argument("--api-hosts", default="")
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--page-timeout", type=float, default=10.0)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--owner-pid", type=int, default=0)
    parser.add_argument("--owner-start", default="")
    parser.add_argument("--fault-id", default="")
    parser.add_argument("--metrics-port", type=int, default=0)
    return parser.parse_args(argv)


def _register_browser(fault_id: str, launched: LaunchedBrowser) -> None:
    if not fault_id:
        return
    from chaosgenesys.faults import registry

    with contextlib.suppress(Exception):
        fault = registry.get(fault_id)
        if fault is not None:
            registry.update(fault_id, spec={
                **fault.spec, "devtools_url": launched.ws_url, "browser_pid": launched.pid,
                "browser_start_time": launched.start_time, "browser_profile": launched.profile,
            })


def run(args: argparse.Namespace) -> int:
    """Attach, watch until told to stop; the exit code."""
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    selectors = json.loads(args.selectors) if args.selectors else dict(DEFAULT_SELECTORS)
    observer = Observer(folder, args.api_hosts, selectors)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    started = time.monotonic()
    launched: LaunchedBrowser | None = None
    metrics: Any = None
    observer.write_status(metrics=None)
    try:
        if args.metrics_port:
            from chaosgenesys.browser.metrics import ObserverMetrics

            metrics = ObserverMetrics(args.metrics_port, folder.name)
            try:
                metrics.start()
            except OSError as error:
                metrics = None
                raise ActivityFailed(str(error.strerror or error)) from None
            observer.log.listener = metrics.event
            observer.write_status(metrics={"port": metrics.port, "url": metrics.url})
        devtools_url = args.devtools_url
        if not devtools_url:
            launched = LaunchedBrowser()
            observer.keep_tokens = True  # a session this run logs in: revoked when it ends
            devtools_url = launched.ws_url
            observer.write_status(browser_pid=launched.pid, devtools_url=launched.ws_url,
                                  browser_start_time=launched.start_time,
                                  browser_profile=launched.profile)
            _register_browser(args.fault_id, launched)
        argument = "devtools_url" if args.devtools_url else "open_url"
        with devtools.connected(devtools_url, argument) as browser:
            gone = threading.Event()
            browser.on("disconnected", lambda *_: gone.set())
            if launched is not None:  # attach first, then open the page: nothing missed
                page = devtools.find_page(browser, "^about:blank$", args.page_timeout)
            else:
                page = devtools.find_page(browser, args.page_url_pattern, args.page_timeout)
            closed = threading.Event()
            page.on("close", lambda *_: closed.set())
            observer.page = page
            observer.page_url = devtools.shown_url(page.url)
            observer.label = args.label or observer.page_url
            page_session = observer.follow(page)
            try:
                observer.follow_children(browser, page_session)
            except Exception as error:  # the page still watched; its children not
                observer.write("children_not_followed", error=redact(str(error), 200))
            if launched is not None:
                observer.open(args.open_url, args.page_url_pattern, args.page_timeout)
                observer.label = args.label or observer.page_url
            elif args.reload:
                observer.reload(args.page_timeout + 5)
            observer.check_selectors()
            observer.poll_ui()
            observer.read_tokens(page_session)
            observer.write("attached", url=observer.page_url)
            observer.write_status(attached=True, attached_at=time.time())
            while True:
                if stop.is_set():
                    observer.ended = "stopped"
                elif args.duration and time.monotonic() - started >= args.duration:
                    observer.ended = "duration"
                elif args.owner_pid and not process_alive(args.owner_pid, args.owner_start):
                    observer.ended = "owner_gone"
                elif gone.is_set() or not browser.is_connected():
                    observer.ended = "browser_gone"
                    observer.write("browser_gone")
                elif closed.is_set():
                    observer.ended = "page_closed"
                    observer.write("page_closed")
                if observer.ended:
                    break
                observer.poll_ui()
                observer.read_tokens(page_session)
                with contextlib.suppress(Exception):
                    observer.page_url = devtools.shown_url(page.url)
                observer.write_status()
                try:
                    page.wait_for_timeout(POLL_S * 1000)
                except Exception:
                    time.sleep(0.05)  # the page or browser went away: the next turn says which
            with contextlib.suppress(Exception):
                observer.read_tokens(page_session)  # a renewal of the last moment
            observer.write("stop", reason=observer.ended)
            observer.write_status()
            with contextlib.suppress(Exception):
                for session in observer.sessions:
                    session.detach()
    except ActivityFailed as error:
        observer.ended = "error"
        observer.write_status(error=str(error))
        return 2
    except Exception as error:
        if not observer.ended:
            observer.ended = "browser_gone" if observer.status.get("attached") else "error"
            if observer.ended == "browser_gone":
                observer.write("browser_gone")
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        observer.write_status(error=redact(first, 300))
        return 0 if observer.ended == "browser_gone" else 3
    finally:
        if launched is not None:
            with contextlib.suppress(Exception):
                observer.revoke_tokens()
            launched.stop()
        if metrics is not None:
            metrics.stop()
        observer.log.close()
        if observer.ended in ENDED_BY_ITSELF and args.fault_id:
            # Nothing left to revert: the registry lists live observers only. (Not when stopped
            # or its owner is gone: a revert is under way then and holds the registry's lock.)
            from chaosgenesys.faults import registry

            with contextlib.suppress(Exception):
                registry.forget(args.fault_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m chaosgenesys.browser.observer``."""
    return run(_parse(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
