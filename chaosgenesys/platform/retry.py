"""Retry policy shared by API calls and token requests: which statuses, how long to wait."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "backoff_delay", "parse_retry_after"]

#: Statuses retried after a wait (rate limited, unavailable, gateway timeout).
RETRYABLE_STATUSES = frozenset({429, 503, 504})


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or HTTP date), else ``None``."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def backoff_delay(base: float, retry_number: int) -> float:
    """Exponential wait with jitter for retry ``retry_number`` (1, 2, ...) when the server gave
    no ``Retry-After``: ``base``, ``2*base``, ``4*base``... each scaled by a random 0.8-1.2."""
    factor = 2.0 ** max(0, retry_number - 1)
    return float(base * factor * random.uniform(0.8, 1.2))
