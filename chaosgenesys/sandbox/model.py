"""The sandbox's domain model as data: users, queues and their members, conversations and their
participants, the routing statuses. No behaviour beyond reading itself: ``state.py`` changes
them (and publishes events), ``views.py`` shows them in the platform's JSON.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaosgenesys.sandbox.clock import utcnow
from chaosgenesys.sandbox.presence import PresenceDefinition

__all__ = [
    "COMMUNICATING",
    "IDLE",
    "INTERACTING",
    "NOT_RESPONDING",
    "OFF_QUEUE",
    "ROUTING_STATUSES",
    "WRAPUP_TIMEOUT_CODE",
    "Conversation",
    "Participant",
    "Queue",
    "QueueMember",
    "User",
]

OFF_QUEUE = "OFF_QUEUE"
IDLE = "IDLE"
INTERACTING = "INTERACTING"
NOT_RESPONDING = "NOT_RESPONDING"
COMMUNICATING = "COMMUNICATING"
ROUTING_STATUSES = (OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING)

#: The system wrap-up code applied when after-call work times out.
WRAPUP_TIMEOUT_CODE = ("7fb334b0-0e9e-11e4-9191-0800200c9a66", "ININ-WRAP-UP-TIMEOUT")

@dataclass
class User:
    """A user (agent) of the sandbox organization."""

    id: str
    name: str
    email: str | None
    presence: PresenceDefinition
    presence_modified: datetime
    routing_status: str
    routing_start: datetime
    presence_message: str = ""
    version: int = 1
    not_responding: bool = False


@dataclass
class QueueMember:
    """A user's membership of a queue."""

    user_id: str
    joined: bool = True


@dataclass
class Queue:
    """An ACD queue."""

    id: str
    name: str
    members: dict[str, QueueMember]
    wrapup_timeout: float
    alerting_timeout: float
    date_created: datetime = field(default_factory=utcnow)


@dataclass
class Participant:
    """A conversation participant with its one call (communication)."""

    id: str
    purpose: str
    name: str
    address: str
    start_time: datetime
    state: str
    initial_state: str
    call_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    direction: str = "inbound"
    user_id: str | None = None
    queue_id: str | None = None
    end_time: datetime | None = None
    connected_time: datetime | None = None
    start_alerting_time: datetime | None = None
    disconnect_type: str | None = None
    held: bool = False
    muted: bool = False
    wrapup_required: bool = False
    wrapup_prompt: str | None = None
    wrapup_timeout_ms: int | None = None
    alerting_timeout_ms: int | None = None
    wrapup: dict[str, Any] | None = None
    acw_state: str | None = None
    acw_start: datetime | None = None
    acw_end: datetime | None = None

    @property
    def active(self) -> bool:
        """Alerting or connected."""
        return self.state in ("alerting", "connected")

    @property
    def in_acw(self) -> bool:
        """In after-call work, waiting for a wrap-up code."""
        return self.acw_state == "pending"


@dataclass
class Conversation:
    """A voice conversation routed through a queue."""

    id: str
    queue_id: str
    address: str
    start_time: datetime
    participants: list[Participant]
    end_time: datetime | None = None
    target_user_id: str | None = None
    auto_answer: bool = False
    declined_by: set[str] = field(default_factory=set)

    def by_purpose(self, purpose: str) -> Participant | None:
        """The first participant with this purpose."""
        return next((p for p in self.participants if p.purpose == purpose), None)

    def current_agent(self) -> Participant | None:
        """The agent participant that is alerting or connected, if any."""
        return next((p for p in self.participants if p.purpose == "agent" and p.active), None)

    @property
    def waiting(self) -> bool:
        """In the queue, waiting for an agent."""
        acd = self.by_purpose("acd")
        return (
            self.end_time is None
            and acd is not None
            and acd.state == "connected"
            and self.current_agent() is None
        )
