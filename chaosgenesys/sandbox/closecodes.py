"""WebSocket close codes the sandbox's server may send (RFC 6455 section 7.4; no imports, so
``chaosgenesys.sandbox.actions`` stays cheap).

Sendable: 1000-1003, 1007-1014 (1012-1014 are registered with IANA) and 3000-4999. Refused:

- 1005 (no status received) and 1006 (abnormal closure): RFC 6455 7.4.1 says they MUST NOT be
  set as the status code of a Close frame; a client sees them when no code or no Close frame
  arrived. To make a client see 1006, drop the connection instead (a network fault or
  ``reset_connections``).
- 1004: reserved, with no meaning defined; a conforming endpoint never sends it, and a client's
  reaction to it tests nothing real. Refused for the same reason.
- 1015 (TLS handshake failure), like 1005/1006, is for reporting only; 1016-2999 are reserved for
  the protocol's extensions.
"""

from __future__ import annotations

__all__ = ["SENDABLE_CLOSE_CODES", "close_code_problem"]

#: The close codes a server may send, as text for messages.
SENDABLE_CLOSE_CODES = "1000-1003, 1007-1014 or 3000-4999"

_NEVER_SENT = {
    1004: "1004 is reserved by RFC 6455 with no meaning defined",
    1005: "1005 (no status received) must never be sent in a Close frame (RFC 6455 7.4.1)",
    1006: "1006 (abnormal closure) must never be sent in a Close frame (RFC 6455 7.4.1); "
    "drop the connection to make a client see it",
    1015: "1015 (TLS handshake failure) must never be sent in a Close frame (RFC 6455 7.4.1)",
}


def close_code_problem(code: object) -> str | None:
    """Why ``code`` cannot be sent by a server, or ``None`` when it can."""
    if isinstance(code, bool) or not isinstance(code, int):
        return f"a close code is a whole number ({SENDABLE_CLOSE_CODES}), not {code!r}"
    if code in _NEVER_SENT:
        return f"{_NEVER_SENT[code]}; use {SENDABLE_CLOSE_CODES}"
    if 1000 <= code <= 1014 or 3000 <= code <= 4999:
        return None
    return f"{code} is not a close code a server may send ({SENDABLE_CLOSE_CODES})"
