"""Per-token rate limiting, a fixed one-minute window like the platform's 300 requests/minute."""

from __future__ import annotations

import math
from dataclasses import dataclass

from chaosgenesys.clock import REAL_CLOCK, Clock

__all__ = ["RateDecision", "RateLimiter"]

_WINDOW = 60.0


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one request against the limit."""

    allowed: bool
    limit: int
    count: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """``inin-ratelimit-*`` headers."""
        return {
            "inin-ratelimit-allowed": str(self.limit),
            "inin-ratelimit-count": str(self.count),
            "inin-ratelimit-reset": str(self.reset_seconds),
        }


class RateLimiter:
    """``limit_per_minute`` requests per token per window; 0 disables the limit."""

    def __init__(self, limit_per_minute: int = 300, clock: Clock = REAL_CLOCK) -> None:
        if limit_per_minute < 0:
            raise ValueError(f"rate_limit_per_minute must be >= 0, not {limit_per_minute!r}")
        self.limit = limit_per_minute
        self._windows: dict[str, tuple[float, int]] = {}
        #: The sandbox's clock: the one-minute window runs on it.
        self.clock = clock

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.limit > 0

    def hit(self, key: str) -> RateDecision:
        """Count one request of ``key`` (a token) and decide."""
        now = self.clock.monotonic()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= _WINDOW:
            start, count = now, 0
        count += 1
        self._windows[key] = (start, count)
        if len(self._windows) > 10_000:
            self._windows = {
                k: v for k, v in self._windows.items() if now - v[0] < _WINDOW
            }
        reset = max(1, math.ceil(start + _WINDOW - now))
        return RateDecision(
            allowed=not self.enabled or count <= self.limit,
            limit=self.limit,
            count=count,
            reset_seconds=reset,
        )
