"""What a call looks like when it arrives, when it is offered and when it is wrapped up, and whom
the ACD offers it to.

Pure functions of the sandbox's data (no state, no events, no timers); ``state.py`` calls them
and does the rest::

    conversation = inbound_call(queue, now=clock.now())
    [first, *others] = acd_candidates(conversation, queues, users)
    conversation.participants.append(agent_leg(queue, first, now=clock.now()))
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chaosgenesys.sandbox.clock import iso
from chaosgenesys.sandbox.model import IDLE, Conversation, Participant, Queue, User

__all__ = ["acd_candidates", "acw_seconds", "agent_leg", "inbound_call", "wrapup_entry"]


def inbound_call(
    queue: Queue,
    *,
    now: datetime,
    conversation_id: str | None = None,
    user_id: str | None = None,
    answer: bool = False,
) -> Conversation:
    """A customer's call into ``queue`` from a random number: the customer's and the queue's
    (``acd``) participants, connected; ``user_id`` pins it to one member, ``answer`` makes the
    agent's leg connect as soon as it is offered."""
    number = f"+1555{uuid.uuid4().int % 10_000_000:07d}"
    return Conversation(
        id=conversation_id or str(uuid.uuid4()),
        queue_id=queue.id,
        address=f"tel:{number}",
        start_time=now,
        participants=[
            Participant(
                id=str(uuid.uuid4()),
                purpose="customer",
                name="Customer",
                address=f"tel:{number}",
                start_time=now,
                connected_time=now,
                state="connected",
                initial_state="connected",
            ),
            Participant(
                id=str(uuid.uuid4()),
                purpose="acd",
                name=queue.name,
                address=f"sip:{queue.id}@sandbox.invalid",
                start_time=now,
                connected_time=now,
                queue_id=queue.id,
                state="connected",
                initial_state="connected",
            ),
        ],
        target_user_id=user_id,
        auto_answer=answer,
    )


def agent_leg(queue: Queue, user: User, *, now: datetime) -> Participant:
    """The agent's participant of a call offered to ``user``: alerting, with the queue's
    wrap-up prompt (``timeout`` when the queue has a wrap-up timeout, else ``mandatory``) and
    alerting timeout."""
    timeout_ms = int(queue.wrapup_timeout * 1000)
    return Participant(
        id=str(uuid.uuid4()),
        purpose="agent",
        name=user.name,
        address=f"sip:{user.id}@sandbox.invalid",
        start_time=now,
        start_alerting_time=now,
        state="alerting",
        initial_state="alerting",
        user_id=user.id,
        queue_id=queue.id,
        wrapup_prompt="timeout" if timeout_ms > 0 else "mandatory",
        wrapup_timeout_ms=timeout_ms if timeout_ms > 0 else None,
        alerting_timeout_ms=int(queue.alerting_timeout * 1000) or None,
    )


def acd_candidates(
    conversation: Conversation, queues: Mapping[str, Queue], users: Mapping[str, User]
) -> list[User]:
    """The members a waiting call may be offered to, longest idle first: joined to its queue,
    ``IDLE``, not among those who declined it, and its pinned member only when it has one."""
    queue = queues.get(conversation.queue_id)
    if queue is None:
        return []
    joined = [
        users[uid] for uid, member in queue.members.items() if member.joined and uid in users
    ]
    idle = [
        user for user in joined
        if user.routing_status == IDLE and user.id not in conversation.declined_by
    ]
    if conversation.target_user_id is not None:
        idle = [user for user in idle if user.id == conversation.target_user_id]
    return sorted(idle, key=lambda user: user.routing_start)


def acw_seconds(participant: Participant, now: datetime) -> int:
    """Whole seconds of after-call work so far (0 when it has not started)."""
    if participant.acw_start is None:
        return 0
    return int((now - participant.acw_start).total_seconds())


def wrapup_entry(
    code: str,
    name: str,
    *,
    now: datetime,
    duration_seconds: int,
    notes: str = "",
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """A participant's ``wrapup`` as the platform shows it, ended ``now``."""
    return {
        "code": code,
        "name": name,
        "notes": notes,
        "tags": list(tags or []),
        "durationSeconds": duration_seconds,
        "endTime": iso(now),
    }
