"""The page-side WebSocket guard behind ``block_websocket_handshakes``.

Chromium gives DevTools no way to refuse a WebSocket handshake (``Network.setBlockedURLs`` and
``Fetch`` do not see them), so the guard wraps the page's ``WebSocket`` constructor: ``new
WebSocket(url)`` for a URL one of its live rules searches opens a real socket to the same scheme,
host and port but to the path :data:`REFUSED_PATH`. The server answers that handshake with an
HTTP error (not 101), so the browser fails the connection exactly as when the service refuses it
(``error``, then ``close`` with 1006) and the real endpoint never sees the handshake. The
instance's ``url`` still reads the URL the page asked for, and the observer reports the attempt
under that URL.

A rule refuses only while its lease is fresh (:data:`LEASE_MS`): the fault holder renews it every
quarter second, so a holder killed outright refuses nothing 1.5 s later.

Two ways the wrapper gets into a page:

- the fault holder installs it when the fault starts (:data:`GUARD` with a rule). Code that
  calls ``new WebSocket`` afterwards goes through it; a library that copied the constructor when
  it loaded (the official streaming client does) still holds the native one and is not reached;
- the observer installs it *resident* in every new document of the page before the page's own
  scripts run (:data:`RESIDENT`, ``Page.addScriptToEvaluateOnNewDocument``): no rule, it passes
  every socket through untouched until a fault adds one, and every library that copies the
  constructor copies the wrapper. A resident wrapper stays in its document when a fault ends.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

#: How long a rule refuses handshakes without being renewed (ms).
LEASE_MS = 1500

#: The path the refused handshakes go to instead (no server answers it with 101); its query
#: parameter :data:`FOR` carries the path the page asked for (never its query), so that the
#: observer reports the attempt as one to the endpoint the page wanted (:func:`asked_url`).
REFUSED_PATH = "/chaosgenesys-refused-websocket-handshake"
FOR = "for"

#: ``(source, flags, leaseMs, refusedPath, resident)``: install the wrapper if the page's
#: ``WebSocket`` is not it yet; add or renew the rule ``source``/``flags`` (none when ``source``
#: is ``null``); mark the wrapper resident (kept when the last rule goes). Returns how many
#: handshakes it refused so far.
GUARD = r"""
(source, flags, leaseMs, refusedPath, resident) => {
  const FOR = 'for';
  const regex = source === null ? null : new RegExp(source, flags);  // bad pattern: no change
  const root = globalThis;
  const state = root.__chaosgenesysWsGuard || (root.__chaosgenesysWsGuard = {
    original: root.WebSocket, refused: 0, rules: {}, resident: false, guard: null,
  });
  if (resident) state.resident = true;
  if (regex) state.rules[source + '/' + flags] = {regex, until: Date.now() + leaseMs};
  if (!state.guard) {
    const Original = state.original;
    const Guard = function WebSocket(url, protocols) {
      const asked = String(url);
      let target = url;
      const now = Date.now();
      for (const rule of Object.values(state.rules)) {
        if (rule.until > now && rule.regex.test(asked)) {
          const parsed = new URL(asked, root.location ? root.location.href : undefined);
          const path = parsed.pathname;  // what the observer reports the attempt as
          parsed.pathname = refusedPath; parsed.hash = '';
          parsed.search = '?' + FOR + '=' + encodeURIComponent(path);
          target = parsed.href; state.refused += 1; break;
        }
      }
      const args = protocols === undefined ? [target] : [target, protocols];
      const socket = Reflect.construct(Original, args, new.target || Guard);
      if (target !== url) {
        const base = root.location ? root.location.href : undefined;
        Object.defineProperty(socket, 'url', {value: new URL(asked, base).href});
      }
      return socket;
    };
    Guard.prototype = Original.prototype;
    for (const name of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) {
      Object.defineProperty(Guard, name, {value: Original[name]});
    }
    state.guard = Guard;
  }
  if (root.WebSocket === state.original) root.WebSocket = state.guard;
  return state.refused;
}
"""

#: ``(source, flags)``: drop that rule; with no rule left and no resident wrapper, put the
#: page's own constructor back. Returns how many handshakes the guard refused.
UNGUARD = r"""
(source, flags) => {
  const state = globalThis.__chaosgenesysWsGuard;
  if (!state) return 0;
  delete state.rules[source + '/' + flags];
  if (Object.keys(state.rules).length === 0 && !state.resident
      && globalThis.WebSocket === state.guard) {
    globalThis.WebSocket = state.original;
    delete globalThis.__chaosgenesysWsGuard;
  }
  return state.refused;
}
"""

#: The script the observer has Chromium run in each new document before the page's scripts.
RESIDENT = f"({GUARD})(null, '', 0, {json.dumps(REFUSED_PATH)}, true);"

#: An expression that says whether the page's ``WebSocket`` is the resident wrapper.
IS_RESIDENT = (
    "Boolean(globalThis.__chaosgenesysWsGuard && globalThis.__chaosgenesysWsGuard.resident"
    " && globalThis.WebSocket === globalThis.__chaosgenesysWsGuard.guard)"
)


def js_regex(pattern: str) -> tuple[str, str]:
    """The (source, flags) of a JavaScript RegExp for a Python pattern (inline ``(?i)`` only)."""
    flags = ""
    match = re.match(r"^\(\?([aiLmsux]+)\)", pattern)
    if match:
        flags = "".join(sorted({"i": "i", "m": "m", "s": "s"}.get(f, "") for f in match.group(1)))
        pattern = pattern[match.end():]
    return pattern, flags


def asked_url(url: str) -> str | None:
    """For the URL of a handshake the guard refused, the URL the page asked for (without its
    query); ``None`` for any other URL."""
    parts = urlsplit(url)
    if parts.path != REFUSED_PATH:
        return None
    asked = parse_qs(parts.query).get(FOR, [""])[0]
    if not asked.startswith("/"):
        asked = "/"
    return f"{parts.scheme}://{parts.netloc}{asked}"
