"""What the observer writes of a text it did not choose: URL queries and fragments, bearer
tokens, ``access_token=…`` style values and JWTs replaced, the text cut short; and what any
browser module shows of a URL (:func:`shown_url`) or of an error (:func:`first_line`).

Only the standard library: the fault holder imports it on its way to being in force.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["TEXT_LIMIT", "first_line", "redact", "shown_url"]

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


def shown_url(url: str) -> str:
    """``url`` without its query and fragment, fit for a log or an error message."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__
