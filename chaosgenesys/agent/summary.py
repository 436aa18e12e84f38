"""Per-agent figures: what ``chaosgenesys.agent.probes.agent_summary`` reports."""

from __future__ import annotations

import json
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from chaosgenesys.platform.metrics import percentile

__all__ = ["API_LATENCIES_KEPT", "PATH_RECORDS_KEPT", "AgentStats"]

#: How many of an agent's latest API call latencies its summary's percentiles are computed over.
API_LATENCIES_KEPT = 4096
#: How many of the latest off-queue stretches and reconnects the summary lists with their
#: times (for verdicts over a window: ``desktop_longest_off_queue(window_seconds=...)``).
PATH_RECORDS_KEPT = 200


@dataclass
class AgentStats:
    """Counters one agent keeps while it runs; :meth:`to_dict` is its JSON summary."""

    user_id: str
    mode: str
    #: How it logged in: ``client_credentials`` or ``user`` (its own user's token).
    login: str = "client_credentials"
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
    api_calls: int = 0
    api_failures: int = 0
    last_error: str = ""
    #: REST changes (presence) answered with a failure, and how many were retried until they
    #: landed.
    changes_failed: int = 0
    changes_retried: int = 0
    #: Wall time (epoch seconds) the desktop's current access token expires (0: no token yet).
    token_expires_at: float = 0.0
    #: When it stopped: whether its token was revoked, whether it still worked afterwards (it
    #: must not), and why not when either is wrong ("": not revoked yet).
    token_revoked: bool = False
    token_still_works: bool = False
    token_revocation: str = ""
    #: The longest stretch (seconds) the desktop was not On Queue in its own view (its presence
    #: not On Queue, or no socket), counted once it had been On Queue; and how many stretches.
    longest_off_queue_seconds: float = 0.0
    off_queue_periods: int = 0
    #: The reconnect backoff's state, remembered across a restart with the same status file.
    reconnect_backoff: dict[str, Any] = field(default_factory=dict)
    #: Monotonic time the current off-queue stretch began (None: On Queue, or never was).
    _off_queue_since: float | None = field(default=None, repr=False)
    _seen_on_queue: bool = field(default=False, repr=False)
    _queue_frozen: bool = field(default=False, repr=False)
    #: The latest off-queue stretches, ``[start, end or None]`` (epoch seconds).
    _off_queue_log: deque[list[float | None]] = field(
        default_factory=lambda: deque(maxlen=PATH_RECORDS_KEPT), repr=False
    )
    #: The latest reconnects, ``[end (epoch seconds), latency_ms]``.
    _reconnect_log: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=PATH_RECORDS_KEPT), repr=False
    )
    #: Latencies (ms) of the latest API calls, token requests included, retry waits included.
    _api_latencies: deque[float] = field(
        default_factory=lambda: deque(maxlen=API_LATENCIES_KEPT), repr=False
    )
    #: Their percentiles, computed again only after a new call (the status file is rewritten
    #: every 0.5 s for every agent; calls come far less often).
    _api_latency: dict[str, float | int | None] | None = field(default=None, repr=False)
    #: Monotonic time since which the open socket has been silent beyond ``zombie_after``.
    _zombie_since: float | None = field(default=None, repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Any change of a figure moves the version, which the cached summary (:meth:`to_dict`)
        # and status entry (:meth:`status_json`) are kept under; setting a value it already has
        # (the watchdog's every tick) does not. Lists and deques changed in place change a
        # counter beside them in the same method (reconnected, api_call, queue_state). The
        # caches themselves live in ``__dict__``, outside this.
        if self.__dict__.get(name, _UNSET) != value:
            self.__dict__["_version"] = self.__dict__.get("_version", 0) + 1
        object.__setattr__(self, name, value)

    def status_json(self) -> str:
        """The summary as the status file keeps it, JSON-encoded: without the figures about
        now (``uptime_seconds``, ``token_expires_in``; ``agent_summary`` computes them when it
        reads, from ``started_at`` and ``token_expires_at``), so that an idle agent's entry is
        encoded once and reused until a figure changes (or while an off-queue stretch goes
        on)."""
        cached: tuple[int, str] | None = self.__dict__.get("_status_json")
        if (
            cached is not None
            and cached[0] == self.__dict__.get("_version", 0)
            and self._off_queue_since is None
        ):
            return cached[1]
        summary = self.to_dict()
        version = self.__dict__.get("_version", 0)  # after to_dict, which may cache a figure
        del summary["uptime_seconds"]
        del summary["token_expires_in"]
        summary["started_at"] = round(self.started_at, 3)
        text = json.dumps(summary, default=str)
        self.__dict__["_status_json"] = (version, text)
        return text

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

    def api_call(self, status: int | None, latency_ms: float) -> None:
        """Account one finished API call (``status`` None: no answer); a failure is no answer
        or a status of 400 and above after any retries."""
        self.api_calls += 1
        if status is None or status >= 400:
            self.api_failures += 1
        self._api_latencies.append(latency_ms)
        self._api_latency = None

    def _api_latency_summary(self) -> dict[str, float | int | None]:
        if self._api_latency is None:
            self._api_latency = _api_latency(list(self._api_latencies))
        return self._api_latency

    def queue_state(self, on_queue: bool, now: float | None = None) -> None:
        """The desktop is (or is not) On Queue and connected, in its own view, now."""
        if self._queue_frozen:
            return
        now = time.monotonic() if now is None else now
        if on_queue:
            self._seen_on_queue = True
            if self._off_queue_since is not None:
                self.longest_off_queue_seconds = max(self.longest_off_queue_seconds,
                                                     now - self._off_queue_since)
                self._off_queue_since = None
                self._close_stretch()
        elif self._seen_on_queue and self._off_queue_since is None:
            self._off_queue_since = now
            self.off_queue_periods += 1
            self._off_queue_log.append([time.time(), None])

    def _close_stretch(self) -> None:
        if self._off_queue_log and self._off_queue_log[-1][1] is None:
            self._off_queue_log[-1][1] = time.time()

    def reconnected(self, latency_ms: float) -> None:
        """Account one reconnect that just ended."""
        self.reconnects += 1
        self.reconnect_latencies_ms.append(latency_ms)
        self._reconnect_log.append((time.time(), latency_ms))

    def queue_stop(self, now: float | None = None) -> None:
        """The desktop stops: an open off-queue stretch ends here, nothing counts after."""
        now = time.monotonic() if now is None else now
        if self._off_queue_since is not None:
            self.longest_off_queue_seconds = max(self.longest_off_queue_seconds,
                                                 now - self._off_queue_since)
            self._off_queue_since = None
            self._close_stretch()
        self._queue_frozen = True

    def longest_off_queue(self, now: float | None = None) -> float:
        """The longest off-queue stretch so far, an open one included."""
        now = time.monotonic() if now is None else now
        current = now - self._off_queue_since if self._off_queue_since is not None else 0.0
        return max(self.longest_off_queue_seconds, current)

    def zombie_end(self) -> None:
        """The socket is no longer believed open (or spoke again)."""
        self._zombie_since = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (a new dict each call). Built again only after a figure changed
        (the status file asks every few seconds for every agent; an idle agent's figures do
        not move); the figures that are about now are brought up to date each time."""
        cached: tuple[int, dict[str, Any]] | None = self.__dict__.get("_summary")
        if cached is None or cached[0] != self.__dict__.get("_version", 0):
            summary = self._build()
            # read after _build, which caches the API latency percentiles (a new version)
            self.__dict__["_summary"] = (self.__dict__.get("_version", 0), summary)
        else:
            summary = cached[1]
            now, wall = time.monotonic(), time.time()
            if self.token_expires_at:
                summary["token_expires_in"] = round(max(0.0, self.token_expires_at - wall), 3)
            if self._off_queue_since is not None:
                summary["longest_off_queue_seconds"] = round(self.longest_off_queue(now), 3)
                summary["off_queue_current_seconds"] = round(now - self._off_queue_since, 3)
            summary["uptime_seconds"] = round(wall - self.started_at, 3)
        return dict(summary)

    def _build(self) -> dict[str, Any]:
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
            "login": self.login,
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
            "api_calls": self.api_calls,
            "api_failures": self.api_failures,
            "api_latency_ms": dict(self._api_latency_summary()),
            "last_error": self.last_error,
            "changes_failed": self.changes_failed,
            "changes_retried": self.changes_retried,
            "token_expires_at": round(self.token_expires_at, 3) if self.token_expires_at
            else None,
            "token_expires_in": round(max(0.0, self.token_expires_at - time.time()), 3)
            if self.token_expires_at else None,
            "token_revoked": self.token_revoked,
            "token_still_works": self.token_still_works,
            "token_revocation": self.token_revocation,
            "longest_off_queue_seconds": round(self.longest_off_queue(), 3),
            "off_queue_periods": self.off_queue_periods,
            "off_queue_now": self._off_queue_since is not None,
            "off_queue_current_seconds": round(time.monotonic() - self._off_queue_since, 3)
            if self._off_queue_since is not None else 0.0,
            "reconnect_backoff": dict(self.reconnect_backoff),
            "off_queue_stretches": [
                [round(start or 0.0, 3), None if end is None else round(end, 3)]
                for start, end in self._off_queue_log
            ],
            "recent_reconnects": [[round(at, 3), round(ms, 1)] for at, ms in self._reconnect_log],
            "uptime_seconds": round(time.time() - self.started_at, 3),
        }


_UNSET = object()


def _api_latency(latencies: list[float]) -> dict[str, float | int | None]:
    """p50 / p99 (nearest rank) / max of the latest calls, and how many they are."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "p50": rounded(percentile(latencies, 0.50)),
        "p99": rounded(percentile(latencies, 0.99)),
        "max": rounded(max(latencies)) if latencies else None,
        "count": len(latencies),
    }
