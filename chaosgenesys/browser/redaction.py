"""What the observer writes of a text it did not choose: URL queries and fragments, bearer
tokens, ``access_token=…`` style values and JWTs replaced, the text cut short.
"""

from __future__ import annotations

import re

__all__ = ["TEXT_LIMIT", "redact"]

TEXT_LIMIT = 500

_SECRETS = [
    (re.compile(r"((?:https?|wss?)://[^\s?#'\"]+)[?#][^\s'\"]*"), r"\1?[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (
        re.compile(
            r"(?i)\b(access_token|id_token|refresh_token|client_secret|code|token)="
            r"[^&\s\"'#]+"
        ),
        r"\1=[redacted]",
    ),
    (
        re.compile(
            r"(?i)(\"?)(access_token|id_token|refresh_token|client_secret|token)\1"
            r"(\s*:\s*)(\"[^\"]*\"|[^\s,;}]+)"
        ),
        r"\1\2\1\3[redacted]",
    ),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[redacted]"),
]


def redact(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` with URL queries and fragments, bearer tokens, ``access_token=…`` style values
    and JWTs replaced, cut to ``limit`` characters."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
