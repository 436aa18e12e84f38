"""What the external observer records, and how it reads the platform's values.

Plain data that :class:`chaosgenesys.notifications.observer.EventObserver` fills in and
:mod:`chaosgenesys.notifications.observer_figures` turns into figures: each watched user's
presence and routing status (:class:`Tracked`), transitions and stretches not On Queue
(:class:`WatchedUser`), each socket (:class:`Connection`) and each loss of it
(:class:`Disconnect`); and the readers of a platform timestamp and presence name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websocket
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.arguments import normalise_presence, presence_name

__all__ = [
    "Connection",
    "Disconnect",
    "Tracked",
    "WatchedUser",
    "is_on_queue",
    "parse_time",
    "presence_of",
]


def parse_time(value: Any) -> datetime | None:
    """A platform timestamp (ISO 8601, ``Z`` or an offset) as an aware datetime; None if it
    is not one (a naive one is taken as UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def presence_of(value: Any) -> str | None:
    """A system presence under its usual name (``On Queue``); an org-specific spelling as it
    came; None when there is none."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return presence_name("presence", value)
    except ActivityFailed:
        return value  # an org-specific spelling: keep it as it came


def is_on_queue(presence: str | None) -> bool:
    """Whether ``presence`` is On Queue, whatever its spelling."""
    return presence is not None and normalise_presence(presence) == "onqueue"


@dataclass
class Tracked:
    """One watched value (presence or routing status) of one user."""

    value: str | None = None
    stamp: datetime | None = None


@dataclass
class WatchedUser:
    """What the observer knows of one user: its values, transitions and stretches off queue."""

    presence: Tracked = field(default_factory=Tracked)
    routing: Tracked = field(default_factory=Tracked)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    not_on_queue_since: float | None = None
    not_on_queue_presence: str | None = None
    #: Closed stretches not On Queue: (from, to, the presence it started with).
    not_on_queue_periods: list[tuple[float, float, str | None]] = field(default_factory=list)
    seconds_not_on_queue: float = 0.0
    events: int = 0


@dataclass
class Connection:
    """One socket of the observer: when it opened, its last message, heartbeats, when it closed."""

    serial: int
    ws: websocket.WebSocket
    channel_id: str
    opened_at: float
    last_message: float
    heartbeats: list[float] = field(default_factory=list)
    pinged: bool = False
    closed_at: float | None = None


@dataclass
class Disconnect:
    """One loss of the observer's socket, and when (and on which channel) it came back."""

    at: float
    wall: str
    code: int | None
    reason: str
    reconnected_at: float | None = None
    new_channel: bool = False
