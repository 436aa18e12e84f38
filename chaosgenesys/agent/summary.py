"""Per-agent figures: what ``chaosgenesys.agent.probes.agent_summary`` reports."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AgentStats"]


@dataclass
class AgentStats:
    """Counters one agent keeps while it runs; :meth:`to_dict` is its JSON summary."""

    user_id: str
    mode: str
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    connected: bool = False
    presence: str = ""
    routing_status: str = ""
    disconnects: int = 0
    reconnects: int = 0
    hard_reconnects: int = 0
    reconnect_latencies_ms: list[float] = field(default_factory=list)
    last_disconnect_reason: str = ""
    zombie_seconds: float = 0.0
    zombies_detected: int = 0
    consistency_violations: int = 0
    local_changes_discarded: int = 0
    logged_out: bool = False
    logged_out_reason: str = ""
    interactions_lost: int = 0
    calls_alerting: int = 0
    calls_answered: int = 0
    wrapups_submitted: int = 0
    token_refreshes: int = 0
    token_errors: int = 0
    unauthorized: int = 0
    http_errors: int = 0
    throttled: int = 0
    socket_closing_notices: int = 0
    last_error: str = ""
    #: Monotonic time since which the open socket has been silent beyond ``zombie_after``.
    _zombie_since: float | None = field(default=None, repr=False)

    def zombie_tick(self, silent_for: float, zombie_after: float, now: float) -> None:
        """Account zombie time: the socket is believed open and has been silent ``silent_for``
        seconds; time beyond ``zombie_after`` counts."""
        if silent_for > zombie_after:
            start = now - (silent_for - zombie_after)
            if self._zombie_since is None:
                self._zombie_since = start
            self.zombie_seconds += max(0.0, now - max(self._zombie_since, start))
            self._zombie_since = now
        else:
            self._zombie_since = None

    def zombie_end(self) -> None:
        """The socket is no longer believed open (or spoke again)."""
        self._zombie_since = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary."""
        latencies = self.reconnect_latencies_ms
        latency = {
            "min": round(min(latencies), 1) if latencies else None,
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
            "count": len(latencies),
        }
        return {
            "user_id": self.user_id,
            "mode": self.mode,
            "ready": self.ready,
            "connected": self.connected,
            "presence": self.presence,
            "routing_status": self.routing_status,
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "hard_reconnects": self.hard_reconnects,
            "reconnect_latency_ms": latency,
            "last_disconnect_reason": self.last_disconnect_reason,
            "zombie_seconds": round(self.zombie_seconds, 3),
            "zombies_detected": self.zombies_detected,
            "consistency_violations": self.consistency_violations,
            "local_changes_discarded": self.local_changes_discarded,
            "logged_out": self.logged_out,
            "logged_out_reason": self.logged_out_reason,
            "interactions_lost": self.interactions_lost,
            "calls_alerting": self.calls_alerting,
            "calls_answered": self.calls_answered,
            "wrapups_submitted": self.wrapups_submitted,
            "token_refreshes": self.token_refreshes,
            "token_errors": self.token_errors,
            "unauthorized": self.unauthorized,
            "http_errors": self.http_errors,
            "throttled": self.throttled,
            "socket_closing_notices": self.socket_closing_notices,
            "last_error": self.last_error,
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }
