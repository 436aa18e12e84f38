"""What the browser observer records of the page: its WebSockets (life and frame sizes, no
payload), its REST calls (method, host, path, status, latency; no query or header), the expiry of
the access tokens it obtains, its console errors and warnings, and its UI labels.

The CDP event handlers and :data:`PageRecorder.HANDLERS`, the events they take;
:mod:`chaosgenesys.browser.page_sessions` subscribes them.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from chaosgenesys.browser import devtools, ws_guard
from chaosgenesys.browser.cdp import evaluated
from chaosgenesys.browser.observer_log import ObserverLog
from chaosgenesys.browser.redaction import redact
from chaosgenesys.failure import activity_failed

__all__ = [
    "DEFAULT_SELECTORS",
    "GENESYS_HOSTS",
    "POLL_SCRIPT",
    "TOKEN_PATH",
    "UI_SCRIPT",
    "PageRecorder",
    "api_url_for",
    "default_api_match",
]

#: The UI read by default: the presence label and the connection banner.
DEFAULT_SELECTORS = {"presence": '[data-cg="presence"]', "connection": '[data-cg="connection"]'}
#: Genesys Cloud hosts whose requests are REST calls whatever their path.
GENESYS_HOSTS = re.compile(r"(^|\.)(mypurecloud\.[a-z.]+|pure\.cloud)$", re.IGNORECASE)
#: The path of the token endpoint: the observer notes each token's expiry from its answer.
TOKEN_PATH = "/oauth/token"


def api_url_for(page_url: str, token_host: str) -> str:
    """The API base URL that takes the tokens of ``token_host`` (``login.<env>`` →
    ``https://api.<env>``; a sandbox's own host is its API too)."""
    scheme = urlsplit(page_url).scheme or "https"
    if token_host.startswith("login."):
        return f"https://api.{token_host[len('login.') :]}"
    return f"{scheme}://{token_host}"


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


class PageRecorder(ObserverLog):
    """The CDP event handlers: each turns what the browser reports into events and status."""

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
        return default_api_match(url, self.page_url)

    def _rest(self, request: dict[str, Any], ts: float, status: Any, **extra: Any) -> float:
        """Write the ``rest`` event of ``request`` ended at ``ts``; its latency (ms)."""
        latency = round((ts - float(request["start"])) * 1000, 1)
        self.write(
            "rest",
            ts,
            method=request["method"],
            host=request["host"],
            path=request["path"],
            status=status,
            latency_ms=latency,
            **extra,
        )
        return latency

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
            "method": str(request.get("method") or ""),
            "host": parts.netloc,
            "path": parts.path or "/",
            "start": ts,
            "status": None,
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
            took = self._rest(request, ts, request["status"])
            if (
                request["path"].endswith(TOKEN_PATH) and request["status"] == 200 and ":" not in rid
            ):  # the page's own session can read the body
                self.token_responses.append((rid, ts, request["host"], took))

    def read_tokens(self) -> None:
        """Note when each access token the page obtained expires (``token`` events): the
        ``expires_in`` of its ``/oauth/token`` answer, read from the browser. The token itself
        is never written; in a browser the observer launched (a session the run logged in) it
        is kept in memory to be revoked at the end (:meth:`revoke_tokens`)."""
        while self.token_responses:
            rid, ts, host, took = self.token_responses.pop(0)
            try:
                answer = self.require_link().send(
                    "Network.getResponseBody", {"requestId": rid}, self.page
                )
                body = answer.get("body") or ""
                if answer.get("base64Encoded"):
                    body = base64.b64decode(body).decode("utf-8", "replace")
                data = json.loads(body)
                lifetime = data.get("expires_in")
            except Exception:  # evicted from the browser's buffer, or not JSON: no figure
                continue
            if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
                expires_at = round(ts + float(lifetime), 3)
                self.write("token", ts, expires_in=lifetime, expires_at=expires_at, request_ms=took)
                self.status["token_expires_at"] = expires_at
            token = data.get("access_token")
            if self.keep_tokens and isinstance(token, str) and token:
                self.session_tokens.append((api_url_for(self.page_url, host), token))

    def token_pending(self) -> bool:
        """Whether a token request of the page's own session still waits for its answer."""
        return any(
            request["path"].endswith(TOKEN_PATH) and ":" not in rid
            for rid, request in self.requests.items()
        )

    def refuse_new_tokens(self) -> None:
        """Have the browser refuse every new token request of the page (the page's ``fetch``
        fails, ``TypeError: Failed to fetch``; nothing is sent): the session is ending, and a
        token the page obtained after its revocation would outlive the run. One already on its
        way is not stopped: :func:`chaosgenesys.browser.observer.settle` waits for its answer."""
        if self.page is not None:
            self.require_link().send(
                "Network.setBlockedURLs", {"urls": [f"*{TOKEN_PATH}*"]}, self.page
            )

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
        self.write(
            "tokens_revoked",
            count=len(tokens),
            revoked=revoked,
            still_working=still,
            problems=problems,
        )
        self.write_status(
            tokens_revoked=revoked, tokens_still_working=still, token_problems=problems
        )

    def on_failed(self, params: dict[str, Any]) -> None:
        request = self.requests.pop(str(params.get("requestId")), None)
        if request is not None:
            error = redact(str(params.get("errorText") or ""), 200)
            self._rest(
                request, self.wall(params.get("timestamp")), request["status"] or 0, error=error
            )

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
            self._console(
                str(level),
                str(entry.get("text") or ""),
                entry.get("timestamp"),
                str(entry.get("source") or "log"),
            )

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

    def evaluate(self, function: str, argument: Any) -> Any:
        """``function(argument)`` in the page's main frame, its value (JSON); its exception
        raised."""
        expression = f"({function})({json.dumps(argument)})"
        return evaluated(
            self.require_link().send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.page
            )
        )

    # -- UI ------------------------------------------------------------------------------------

    def check_selectors(self, note: bool = True) -> None:
        """Read the UI once (``note``: and record what it shows); a selector the page cannot
        parse fails naming it. Parsing a selector needs no particular document: a blank page
        refuses the same ones."""
        found = self.evaluate(UI_SCRIPT, self.selectors)
        bad = {name: item["bad"] for name, item in found.items() if "bad" in item}
        if bad:
            name = sorted(bad)[0]
            raise activity_failed(
                f"selectors[{name!r}] {self.selectors[name]!r} is not a CSS selector the page "
                f"accepts: {bad[name]}"
            )
        if note:
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
            found = self.evaluate(POLL_SCRIPT, self.selectors)
        except Exception:  # navigating, or going away: the next poll (or the end) tells
            return
        self.note_ui(found["ui"])
        resident = bool(found["guard"])
        if self.status.get("ws_guard_resident") != resident:
            self.status["ws_guard_resident"] = resident
            self.write("ws_guard", resident=resident)
