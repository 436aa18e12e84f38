"""Request accounting: how many requests the sandbox served, by method and path.

Every request except the admin surface (``/sandbox/``) is counted, including ones answered by a
fault, the rate limiter or an authentication error, so tests and benchmarks can assert how many
requests a client made.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

__all__ = ["RequestLog"]


class RequestLog:
    """Counters of ``(method, path)``."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, method: str, path: str) -> None:
        """Count one request."""
        self._counts[(method.upper(), path)] += 1

    def count(self, path_regex: str | None = None, method: str | None = None) -> int:
        """Requests whose path matches ``path_regex`` (re.search) and method is ``method``."""
        regex = re.compile(path_regex) if path_regex else None
        wanted = method.upper() if method else None
        return sum(
            n
            for (m, p), n in self._counts.items()
            if (wanted is None or m == wanted) and (regex is None or regex.search(p))
        )

    def entries(
        self, path_regex: str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        """``[{method, path, count}]`` matching the filters, most requested first."""
        regex = re.compile(path_regex) if path_regex else None
        wanted = method.upper() if method else None
        return [
            {"method": m, "path": p, "count": n}
            for (m, p), n in self._counts.most_common()
            if (wanted is None or m == wanted) and (regex is None or regex.search(p))
        ]

    def reset(self) -> None:
        """Forget every count."""
        self._counts.clear()
