"""The figures :meth:`EventObserver.run` returns, computed from what the observer recorded.

:class:`ObserverFigures` is a mixin of :class:`chaosgenesys.notifications.observer.EventObserver`:
it reads the attributes declared on it, which the observer sets and fills in, and changes none
of them. The observer's wall-clock stamps and offsets (``_wall``, ``_offset``) are here too, and
the heartbeat interval learnt from the gaps between heartbeats (the observer's watchdog uses it).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from chaosgenesys.notifications.observer_records import Connection, Disconnect, WatchedUser

__all__ = ["ObserverFigures"]


class ObserverFigures:
    """The figures of an observation (a mixin: :class:`EventObserver` sets the attributes)."""

    user_ids: list[str]
    topics: list[str]
    given_interval: float | None
    _start: float
    _wall_start: float
    _first_connected: float | None
    _users: dict[str, WatchedUser]
    _connections: list[Connection]
    _disconnects: list[Disconnect]
    _event_counts: Counter[str]
    _system: list[dict[str, Any]]
    _errors: list[str]
    _rejected: list[dict[str, Any]]
    _pongs: int
    _resyncs: int
    _connect_failures: int
    _first_error: str
    _channels_used: int

    # ------------------------------------------------------------------ time
    def _wall(self, moment: float) -> str:
        epoch = self._wall_start + (moment - self._start)
        stamp = datetime.fromtimestamp(epoch, tz=UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _offset(self, moment: float) -> float:
        return round(moment - self._start, 3)

    # ------------------------------------------------------------------ figures
    def _gaps(self) -> list[tuple[float, bool]]:
        """(gap seconds, trailing) between connect/heartbeats/close, per connection."""
        gaps: list[tuple[float, bool]] = []
        for connection in self._connections:
            previous = connection.opened_at
            for beat in connection.heartbeats:
                gaps.append((beat - previous, False))
                previous = beat
            if connection.closed_at is not None:
                gaps.append((connection.closed_at - previous, True))
        return gaps

    def _window(self, start: float, stop: float, reason: str | None = None) -> dict[str, Any]:
        """A stretch of time: wall clock, offsets since the start, seconds (and why)."""
        window: dict[str, Any] = {
            "from": self._wall(start),
            "to": self._wall(stop),
            "t_from": self._offset(start),
            "t_to": self._offset(stop),
            "seconds": round(max(0.0, stop - start), 3),
        }
        if reason is not None:
            window["reason"] = reason
        return window

    def _learnt_interval(self) -> float | None:
        gaps = [gap for gap, trailing in self._gaps() if not trailing and gap > 0]
        if not gaps:
            return None
        return float(statistics.median(gaps))

    def _missed(self, interval: float | None) -> int:
        if not interval:
            return 0
        missed = 0
        for gap, _trailing in self._gaps():
            missed += max(0, int((gap - 0.5 * interval) // interval))
        return missed

    def _result(self, end: float) -> dict[str, Any]:
        users: dict[str, Any] = {}
        for user_id, user in self._users.items():
            not_on_queue = user.seconds_not_on_queue
            if user.not_on_queue_since is not None:
                not_on_queue += max(0.0, end - user.not_on_queue_since)
            stretches = [(a, b, presence, False) for a, b, presence in user.not_on_queue_periods]
            if user.not_on_queue_since is not None:
                stretches.append(
                    (user.not_on_queue_since, max(end, user.not_on_queue_since),
                     user.not_on_queue_presence, True)
                )
            periods = [
                {**self._window(a, b), "presence": presence, "open": still}
                for a, b, presence, still in stretches
            ]
            users[user_id] = {
                "not_on_queue_periods": periods,
                "longest_not_on_queue_seconds": max(
                    (period["seconds"] for period in periods), default=0.0
                ),
                "presence": user.presence.value,
                "routing_status": user.routing.value,
                "seconds_not_on_queue": round(not_on_queue, 3),
                "presence_transitions": sum(
                    1 for t in user.transitions if t["kind"] == "presence"
                ),
                "routing_transitions": sum(1 for t in user.transitions if t["kind"] == "routing"),
                "transitions": user.transitions,
                "events": user.events,
            }
        interval = self.given_interval or self._learnt_interval()
        heartbeats = sum(len(c.heartbeats) for c in self._connections)
        connected = sum(
            (c.closed_at if c.closed_at is not None else end) - c.opened_at
            for c in self._connections
        )
        blind: list[dict[str, Any]] = []
        if self._connect_failures and self._first_connected is not None:
            blind.append(self._window(self._start, self._first_connected,
                                      f"connecting ({self._connect_failures} failed attempt(s),"
                                      f" first: {self._first_error})"))
        for d in self._disconnects:
            reconnected = d.reconnected_at if d.reconnected_at is not None else end
            blind.append(self._window(d.at, reconnected, f"disconnected: {d.code} {d.reason}"))
        first_connected = self._first_connected if self._first_connected is not None else end
        disconnects = [
            {
                "at": d.wall,
                "t": self._offset(d.at),
                "code": d.code,
                "reason": d.reason,
                "reconnect_ms": round((d.reconnected_at - d.at) * 1000, 1)
                if d.reconnected_at is not None
                else None,
                "new_channel": d.new_channel,
            }
            for d in self._disconnects
        ]
        return {
            "started_at": self._wall(self._start),
            "ended_at": self._wall(end),
            "observed_seconds": round(end - self._start, 3),
            "user_ids": self.user_ids,
            "topics": self.topics,
            "users": users,
            "seconds_not_on_queue": {u: users[u]["seconds_not_on_queue"] for u in users},
            "max_seconds_not_on_queue": max(
                (users[u]["seconds_not_on_queue"] for u in users), default=0.0
            ),
            "longest_not_on_queue_seconds": {
                u: users[u]["longest_not_on_queue_seconds"] for u in users
            },
            "transitions": sum(len(users[u]["transitions"]) for u in users),
            "disconnects": len(disconnects),
            "disconnect_details": disconnects,
            "reconnects": sum(1 for d in self._disconnects if d.reconnected_at is not None),
            "connect_ms": round((first_connected - self._start) * 1000, 1),
            "connect_failures": self._connect_failures,
            "blind_windows": blind,
            "blind_seconds": round(sum(w["seconds"] for w in blind), 3),
            "connected_seconds": round(connected, 3),
            "channels_used": self._channels_used,
            "resyncs": self._resyncs,
            "heartbeats": heartbeats,
            "heartbeat_interval": round(interval, 3) if interval else None,
            "heartbeat_interval_source": "given"
            if self.given_interval
            else ("learnt" if interval else None),
            "missed_heartbeats": self._missed(interval),
            "pongs": self._pongs,
            "events": sum(self._event_counts.values()),
            "event_counts": dict(sorted(self._event_counts.items())),
            "system_messages": self._system,
            "rejected_topics": self._rejected,
            "errors": list(self._errors),
        }
