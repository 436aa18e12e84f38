"""Server-side faults: delay or fail requests whose path matches a regex.

A fault applies to ``/oauth``, ``/api/v2`` and ``/channels`` requests (never ``/sandbox``):
``re.search(path_pattern, request.path)``, optionally one method only. It waits ``delay_ms``, then
answers ``status`` with an ErrorBody (the code that goes with the status; 429 adds
``Retry-After``) or lets the request through. ``count`` applies it that many times and then
removes it; ``duration`` removes it after that many seconds. Several faults can be active:
every match is applied in the order they were added (delays add up, the first status answers).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from chaosgenesys.clock import REAL_CLOCK, Clock
from chaosgenesys.error_bodies import code_for
from chaosgenesys.sandbox.errors import SandboxHTTPError, rate_limit_message

__all__ = ["Fault", "FaultError", "FaultStore"]

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class FaultError(ValueError):
    """A fault definition is invalid; the message names the field and the value."""


@dataclass
class Fault:
    """One active server-side fault."""

    id: str
    path_pattern: str
    regex: re.Pattern[str] = field(repr=False)
    method: str | None = None
    delay_ms: int = 0
    status: int | None = None
    retry_after: int = 1
    remaining: int | None = None
    expires_at: float | None = None
    applied: int = 0

    def expired(self, now: float) -> bool:
        """Used up (count) or past its duration."""
        return (self.remaining is not None and self.remaining <= 0) or (
            self.expires_at is not None and now >= self.expires_at
        )

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to the request."""
        if self.method is not None and self.method != method.upper():
            return False
        return self.regex.search(path) is not None

    def error(self) -> SandboxHTTPError | None:
        """The error to answer with, if this fault has a status."""
        if self.status is None:
            return None
        headers: dict[str, str] = {}
        message = None
        params: dict[str, str] = {}
        if self.status == 429:
            headers["Retry-After"] = str(self.retry_after)
            message = rate_limit_message(self.retry_after)
            params["retryAfter"] = str(self.retry_after)
        elif self.status in (503, 504):
            headers["Retry-After"] = str(self.retry_after)
        return SandboxHTTPError(
            self.status,
            message,
            code=code_for(self.status),
            headers=headers,
            message_params=params,
        )

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """A JSON view of the fault."""
        now = time.monotonic() if now is None else now
        return {
            "id": self.id,
            "path_pattern": self.path_pattern,
            "method": self.method,
            "delay_ms": self.delay_ms,
            "status": self.status,
            "retry_after": self.retry_after,
            "remaining": self.remaining,
            "expires_in": None
            if self.expires_at is None
            else round(max(0.0, self.expires_at - now), 3),
            "applied": self.applied,
        }


class FaultStore:
    """The active faults, in the order they were added."""

    def __init__(self, clock: Clock = REAL_CLOCK) -> None:
        self._faults: dict[str, Fault] = {}
        #: The sandbox's clock: a fault's ``duration`` runs on it.
        self.clock = clock

    def add(
        self,
        path_pattern: str,
        *,
        delay_ms: float = 0,
        status: int | None = None,
        method: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Validate and add a fault; :class:`FaultError` names a bad field and its value."""
        if not isinstance(path_pattern, str) or not path_pattern:
            raise FaultError(f"path_pattern must be a non-empty regex, not {path_pattern!r}")
        try:
            regex = re.compile(path_pattern)
        except re.error as exc:
            raise FaultError(f"path_pattern {path_pattern!r} is not a valid regex: {exc}") from exc
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int | float) or delay_ms < 0:
            raise FaultError(f"delay_ms must be a number >= 0, not {delay_ms!r}")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599
        ):
            raise FaultError(f"status must be an HTTP error status 400-599, not {status!r}")
        if method is not None:
            if not isinstance(method, str) or method.upper() not in _METHODS:
                raise FaultError(f"method must be one of {', '.join(_METHODS)}, not {method!r}")
            method = method.upper()
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise FaultError(f"count must be a whole number >= 1, not {count!r}")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
        ):
            raise FaultError(f"duration must be a number of seconds > 0, not {duration!r}")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0
        ):
            raise FaultError(f"retry_after must be a whole number >= 0, not {retry_after!r}")
        if not delay_ms and status is None:
            raise FaultError("a fault needs delay_ms > 0 or a status")
        fault = Fault(
            id=str(uuid.uuid4()),
            path_pattern=path_pattern,
            regex=regex,
            method=method,
            delay_ms=int(delay_ms),
            status=status,
            retry_after=1 if retry_after is None else retry_after,
            remaining=count,
            expires_at=None if duration is None else self.clock.monotonic() + float(duration),
        )
        self._faults[fault.id] = fault
        return fault

    def remove(self, fault_id: str) -> bool:
        """Remove one fault; ``True`` if it was active."""
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> int:
        """Remove every fault; returns how many there were."""
        count = len(self._faults)
        self._faults.clear()
        return count

    def _purge(self, now: float) -> None:
        for fault_id in [f.id for f in self._faults.values() if f.expired(now)]:
            del self._faults[fault_id]

    def active(self) -> list[Fault]:
        """The faults still active."""
        self._purge(self.clock.monotonic())
        return list(self._faults.values())

    def to_json(self) -> list[dict[str, Any]]:
        """The JSON views of the faults still active (``expires_in`` on the sandbox's clock)."""
        now = self.clock.monotonic()
        return [fault.to_json(now) for fault in self.active()]

    def take(self, method: str, path: str) -> list[Fault]:
        """The faults that apply to this request, counted as applied (used-up ones removed)."""
        now = self.clock.monotonic()
        self._purge(now)
        matched = [fault for fault in self._faults.values() if fault.matches(method, path)]
        for fault in matched:
            fault.applied += 1
            if fault.remaining is not None:
                fault.remaining -= 1
        self._purge(now)
        return matched
