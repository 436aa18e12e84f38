"""In-memory metrics of the platform client's calls.

Every call of :class:`chaosgenesys.platform.client.GenesysClient` (and every token request)
is recorded: method, a path template (ids replaced by ``{id}``), final status, wall-clock latency
in milliseconds (retry waits included), timestamp and the number of retries. The last
``inin-ratelimit-*`` headers seen are kept too. Controls such as the killswitch read
:func:`snapshot`. Thread-safe; bounded to the last :data:`MAX_RECORDS` calls.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "MAX_RECORDS",
    "CallRecord",
    "MetricsRecorder",
    "path_template",
    "percentile",
    "record",
    "recorder",
    "reset",
    "snapshot",
]

MAX_RECORDS = 10_000
RATE_LIMIT_HEADERS = ("inin-ratelimit-allowed", "inin-ratelimit-count", "inin-ratelimit-reset")

_ID_SEGMENT = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d+|[0-9a-fA-F]{16,}|[A-Za-z0-9_-]{24,})$"
)


def path_template(path: str) -> str:
    """``/api/v2/users/<uuid>/presences/purecloud`` → ``/api/v2/users/{id}/presences/purecloud``.

    The query string is dropped; UUIDs, numbers and long opaque tokens become ``{id}``.
    """
    path = path.split("?", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` (0..1) percentile of ``values`` by nearest rank; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class CallRecord:
    """One recorded call. ``status`` is ``None`` when no response came (timeout, refused)."""

    method: str
    path: str
    status: int | None
    latency_ms: float
    timestamp: float
    retries: int = 0


class MetricsRecorder:
    """A thread-safe, bounded recorder of calls and of the last rate-limit headers."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self._lock = threading.Lock()
        self._records: deque[CallRecord] = deque(maxlen=max_records)
        self._rate_limit: dict[str, str] = {}
        self._rate_limit_at: float | None = None
        self._total = 0

    def record(
        self,
        method: str,
        path: str,
        status: int | None,
        latency_ms: float,
        *,
        retries: int = 0,
        headers: Mapping[str, str] | None = None,
        timestamp: float | None = None,
    ) -> CallRecord:
        """Record one call; ``headers`` are scanned for ``inin-ratelimit-*``."""
        entry = CallRecord(
            method=method.upper(),
            path=path_template(path),
            status=status,
            latency_ms=float(latency_ms),
            timestamp=time.time() if timestamp is None else timestamp,
            retries=retries,
        )
        limits: dict[str, str] = {}
        if headers is not None:
            for name in RATE_LIMIT_HEADERS:
                value = headers.get(name)
                if value is not None:
                    limits[name] = value
        with self._lock:
            self._records.append(entry)
            self._total += 1
            if limits:
                self._rate_limit = limits
                self._rate_limit_at = entry.timestamp
        return entry

    def records(self, window_seconds: float | None = None) -> list[CallRecord]:
        """The recorded calls, oldest first; only the last ``window_seconds`` if given."""
        with self._lock:
            items = list(self._records)
        if window_seconds is not None:
            cutoff = time.time() - window_seconds
            items = [r for r in items if r.timestamp >= cutoff]
        return items

    def snapshot(self, window_seconds: float | None = None) -> dict[str, Any]:
        """A JSON-serialisable summary.

        Keys: ``count``, ``total_recorded`` (since the last reset, beyond the bound too),
        ``p50_ms``, ``p99_ms``, ``max_ms`` (``None`` without calls), ``status_counts`` (status
        as a string, ``"error"`` for no response), ``errors`` (status ≥ 400 or no response),
        ``retries``, ``rate_limit`` (last ``inin-ratelimit-*`` headers) and ``rate_limit_at``.
        """
        items = self.records(window_seconds)
        with self._lock:
            rate_limit = dict(self._rate_limit)
            rate_limit_at = self._rate_limit_at
            total = self._total
        latencies = [r.latency_ms for r in items]
        statuses = Counter("error" if r.status is None else str(r.status) for r in items)
        return {
            "count": len(items),
            "total_recorded": total,
            "window_seconds": window_seconds,
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies) if latencies else None,
            "status_counts": dict(statuses),
            "errors": sum(1 for r in items if r.status is None or r.status >= 400),
            "retries": sum(r.retries for r in items),
            "rate_limit": rate_limit,
            "rate_limit_at": rate_limit_at,
        }

    def reset(self) -> None:
        """Forget every record and the rate-limit headers."""
        with self._lock:
            self._records.clear()
            self._rate_limit = {}
            self._rate_limit_at = None
            self._total = 0


_RECORDER = MetricsRecorder()


def recorder() -> MetricsRecorder:
    """The process-wide recorder the platform client writes to."""
    return _RECORDER


def record(
    method: str,
    path: str,
    status: int | None,
    latency_ms: float,
    *,
    retries: int = 0,
    headers: Mapping[str, str] | None = None,
) -> CallRecord:
    """Record one call in the process-wide recorder."""
    return _RECORDER.record(method, path, status, latency_ms, retries=retries, headers=headers)


def snapshot(window_seconds: float | None = None) -> dict[str, Any]:
    """Summary of the process-wide recorder (see :meth:`MetricsRecorder.snapshot`)."""
    return _RECORDER.snapshot(window_seconds)


def records(window_seconds: float | None = None) -> list[dict[str, Any]]:
    """The process-wide records as dictionaries, oldest first."""
    return [asdict(r) for r in _RECORDER.records(window_seconds)]


def reset() -> None:
    """Reset the process-wide recorder."""
    _RECORDER.reset()
