"""The sandbox's state: users, presence, routing status, queues and calls, and how they change
(the data classes are ``model.py``).

Everything here runs on the sandbox's event loop thread (handlers, admin calls and timers), so
there is no locking. Every change publishes its notification events on :class:`EventBus`.

Routing status follows presence, as on the platform:

* presence not ``On Queue`` -> ``OFF_QUEUE``;
* ``On Queue`` with an alerting or connected ACD call, or in after-call work -> ``INTERACTING``;
* ``On Queue`` after an unanswered alert (queue ``alerting_timeout``) -> ``NOT_RESPONDING`` until
  the presence is set again or the routing status is put back to ``IDLE``;
* otherwise ``IDLE``.

When an agent's desktop session is gone for longer than a grace time, the platform reacts
(alerting calls not answered and re-routed, the agent logged off): see ``sessions.py``.

A call routed to a queue goes to the longest-idle joined member who is ``IDLE``; without one it
waits in the queue (``oWaiting``) and is offered as soon as a member becomes idle.

Why one class of about 600 lines: presence, routing status and the call lifecycle are one
state machine whose transitions call one another (a wrap-up ends -> the agent is ``IDLE`` ->
waiting calls are dispatched -> a call alerts -> the agent is ``INTERACTING``), with the timers
that drive them; split, each part would reach into the others' dictionaries. What a call looks
like and whom the ACD offers it to are pure functions in ``calls.py``; the data classes are
``model.py``; the platform's reaction to a gone desktop session is ``sessions.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from chaosgenesys.clock import REAL_CLOCK, Clock, Timer
from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.calls import (
    acd_candidates,
    acw_seconds,
    agent_leg,
    inbound_call,
    wrapup_entry,
)
from chaosgenesys.sandbox.errors import SandboxHTTPError, bad_request, not_found
from chaosgenesys.sandbox.events import EventBus
from chaosgenesys.sandbox.model import (
    IDLE,
    INTERACTING,
    NOT_RESPONDING,
    OFF_QUEUE,
    WRAPUP_TIMEOUT_CODE,
    Conversation,
    Participant,
    Queue,
    QueueMember,
    User,
)
from chaosgenesys.sandbox.presence import (
    ON_QUEUE,
    SYSTEM_PRESENCES,
    PresenceDefinition,
    find_presence,
)
from chaosgenesys.sandbox.seed import Seed, load_seed
from chaosgenesys.sandbox.tokens import TokenStore

__all__ = ["SandboxState"]

logger = logging.getLogger("chaostoolkit")

_MAX_ENDED_CONVERSATIONS = 1000


class SandboxState:
    """All the simulated platform state, seeded from a :class:`Seed`.

    ``clock`` (:mod:`chaosgenesys.clock`) is the sandbox's time: timestamps, token lifetimes,
    alerting and wrap-up timeouts, and the other components' timers (they read
    ``state.clock``).
    """

    def __init__(
        self, seed: Seed | None = None, events: EventBus | None = None, clock: Clock = REAL_CLOCK
    ) -> None:
        self.clock = clock
        self.events = events if events is not None else EventBus()
        self.tokens = TokenStore(clock=clock)
        self.users: dict[str, User] = {}
        self.queues: dict[str, Queue] = {}
        self.conversations: dict[str, Conversation] = {}
        self.wrapup_codes: dict[str, str] = {}
        self._timers: dict[str, Timer] = {}
        self._dispatching = False
        self.seed = seed if seed is not None else load_seed(None)
        self.load(self.seed)

    # ------------------------------------------------------------------ seeding
    def load(self, seed: Seed) -> None:
        """Replace users, queues, conversations, wrap-up codes and OAuth clients with ``seed``.

        Tokens of clients that still exist stay valid.
        """
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.seed = seed
        self.tokens.set_clients(seed.clients)
        now = self.clock.now()
        self.seed_time = now
        self.users = {}
        for user_seed in seed.users:
            definition = find_presence(user_seed.presence)
            assert definition is not None  # validated by the seed loader
            self.users[user_seed.id] = User(
                id=user_seed.id,
                name=user_seed.name,
                email=user_seed.email,
                presence=definition,
                presence_modified=now,
                routing_status=IDLE if definition == ON_QUEUE else OFF_QUEUE,
                routing_start=now,
            )
        self.queues = {
            queue_seed.id: Queue(
                id=queue_seed.id,
                name=queue_seed.name,
                members={uid: QueueMember(uid) for uid in queue_seed.members},
                wrapup_timeout=queue_seed.wrapup_timeout,
                alerting_timeout=queue_seed.alerting_timeout,
            )
            for queue_seed in seed.queues
        }
        self.conversations = {}
        self.wrapup_codes = {code.id: code.name for code in seed.wrapup_codes}

    # ------------------------------------------------------------------ lookups
    def user(self, user_id: str) -> User:
        """The user, or 404 ``not.found``."""
        user = self.users.get(user_id)
        if user is None:
            raise not_found("User", user_id)
        return user

    def queue(self, queue_id: str) -> Queue:
        """The queue, or 404 ``not.found``."""
        queue = self.queues.get(queue_id)
        if queue is None:
            raise not_found("Queue", queue_id)
        return queue

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation, or 404 ``not.found``."""
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            raise not_found("Conversation", conversation_id)
        return conversation

    def participant(self, conversation_id: str, participant_id: str) -> tuple[
        Conversation, Participant
    ]:
        """The conversation and one of its participants, or 404 ``not.found``."""
        conversation = self.conversation(conversation_id)
        for participant in conversation.participants:
            if participant.id == participant_id:
                return conversation, participant
        raise not_found("Participant", participant_id)

    def user_queues(self, user_id: str) -> list[tuple[Queue, QueueMember]]:
        """The queues ``user_id`` is a member of, with the membership."""
        return [
            (queue, queue.members[user_id]) for queue in self.queues.values()
            if user_id in queue.members
        ]

    def agent_participants(self, user_id: str) -> Iterator[tuple[Conversation, Participant]]:
        """Every agent participant of ``user_id``, oldest conversation first."""
        for conversation in self.conversations.values():
            for participant in conversation.participants:
                if participant.purpose == "agent" and participant.user_id == user_id:
                    yield conversation, participant

    def conversation_counts(self, user_id: str) -> tuple[int, int]:
        """``(active, acw)`` ACD calls of a user, for ``conversationSummary``."""
        active = acw = 0
        for _conversation, participant in self.agent_participants(user_id):
            if participant.active:
                active += 1
            elif participant.in_acw:
                acw += 1
        return active, acw

    def _busy(self, user_id: str) -> bool:
        return any(p.active or p.in_acw for _c, p in self.agent_participants(user_id))

    # ------------------------------------------------------------------ presence and routing
    def _derive_routing_status(self, user: User) -> str:
        if user.presence != ON_QUEUE:
            return OFF_QUEUE
        if self._busy(user.id):
            return INTERACTING
        if user.not_responding:
            return NOT_RESPONDING
        return IDLE

    def _refresh(self, user: User, *, presence_changed: bool = False) -> None:
        """Recompute the routing status and publish what changed."""
        status = self._derive_routing_status(user)
        status_changed = status != user.routing_status
        if status_changed:
            logger.debug("sandbox: %s routing %s -> %s", user.id, user.routing_status, status)
            user.routing_status = status
            user.routing_start = self.clock.now()
        if presence_changed or status_changed:
            user.version += 1
        if presence_changed:
            self.events.publish(f"v2.users.{user.id}.presence", views.presence_event(user))
        if status_changed:
            self.events.publish(
                f"v2.users.{user.id}.routingStatus", views.routing_status_event(user)
            )
        if presence_changed or status_changed:
            self.events.publish(f"v2.users.{user.id}.activity", views.activity_event(self, user))

    def set_presence(
        self, user_id: str, definition_id: str, message: str | None = None
    ) -> User:
        """PATCH presence: ``definition_id`` must be a presence definition id (400 otherwise)."""
        user = self.user(user_id)
        definition = next((d for d in SYSTEM_PRESENCES if d.id == definition_id), None)
        if definition is None:
            raise SandboxHTTPError(
                400,
                f"Presence definition {definition_id!r} was not found",
                code="bad.request",
                message_params={"presenceDefinitionId": definition_id},
            )
        return self._apply_presence(user, definition, message)

    def set_presence_by_name(self, user_id: str, presence: str) -> User:
        """Set presence by system presence name in any spelling (admin and tests)."""
        user = self.user(user_id)
        definition = find_presence(presence)
        if definition is None:
            raise bad_request(f"presence {presence!r} is not a system presence")
        return self._apply_presence(user, definition, None)

    def _apply_presence(
        self, user: User, definition: PresenceDefinition, message: str | None
    ) -> User:
        user.presence = definition
        user.presence_modified = self.clock.now()
        if message is not None:
            user.presence_message = message
        user.not_responding = False
        self._refresh(user, presence_changed=True)
        self._dispatch()
        return user

    def put_routing_status(self, user_id: str, status: str) -> User:
        """PUT routing status: ``IDLE`` clears NOT_RESPONDING, ``OFF_QUEUE`` goes Available."""
        user = self.user(user_id)
        status = status.upper()
        if status == IDLE:
            user.not_responding = False
            self._refresh(user)
            self._dispatch()
        elif status == OFF_QUEUE:
            if user.presence == ON_QUEUE:
                self.set_presence_by_name(user.id, "Available")
        else:
            raise bad_request(
                f"routing status {status!r} cannot be set; use IDLE or OFF_QUEUE "
                "(go on queue through presence)"
            )
        return user

    def set_joined(self, user_id: str, queue_id: str, joined: bool) -> QueueMember:
        """Join or unjoin a queue the user is a member of."""
        user = self.user(user_id)
        queue = self.queue(queue_id)
        member = queue.members.get(user_id)
        if member is None:
            raise bad_request(f"user {user_id} is not a member of queue {queue_id}")
        if member.joined != joined:
            member.joined = joined
            user.version += 1
            self.events.publish(f"v2.users.{user.id}.activity", views.activity_event(self, user))
            self._dispatch()
        return member

    # ------------------------------------------------------------------ calls
    def route_call(
        self,
        queue_id: str,
        user_id: str | None = None,
        answer: bool = False,
        conversation_id: str | None = None,
    ) -> Conversation:
        """A customer calls ``queue_id``; offered to an idle member (or ``user_id``) or waits.

        ``conversation_id`` names the new conversation (default: a new uuid); it must not be
        the id of a conversation the sandbox still has."""
        queue = self.queue(queue_id)
        if user_id is not None and user_id not in queue.members:
            raise bad_request(f"user_id {user_id!r} is not a member of queue {queue_id}")
        if conversation_id is not None and conversation_id in self.conversations:
            raise bad_request(f"conversation {conversation_id!r} already exists")
        conversation = inbound_call(
            queue,
            now=self.clock.now(),
            conversation_id=conversation_id,
            user_id=user_id,
            answer=answer,
        )
        self.conversations[conversation.id] = conversation
        self._prune_conversations()
        logger.debug("sandbox: call %s routed to queue %s", conversation.id, queue.id)
        self._publish_conversation(conversation)
        self._dispatch()
        return conversation

    def _dispatch(self) -> None:
        """Offer waiting calls to idle members, oldest call first."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            progress = True
            while progress:
                progress = False
                waiting = sorted(
                    (c for c in self.conversations.values() if c.waiting),
                    key=lambda c: c.start_time,
                )
                for conversation in waiting:
                    candidates = acd_candidates(conversation, self.queues, self.users)
                    if candidates:
                        self._offer(conversation, candidates[0])
                        progress = True
        finally:
            self._dispatching = False

    def _offer(self, conversation: Conversation, user: User) -> None:
        queue = self.queues[conversation.queue_id]
        participant = agent_leg(queue, user, now=self.clock.now())
        conversation.participants.append(participant)
        logger.debug("sandbox: call %s alerting on %s", conversation.id, user.id)
        self._refresh(user)
        self._publish_conversation(conversation)
        if conversation.auto_answer:
            self._connect(conversation, participant)
        elif queue.alerting_timeout > 0:
            self._schedule(
                f"alert:{participant.id}",
                queue.alerting_timeout,
                lambda: self._alert_timeout(conversation.id, participant.id),
            )

    def update_participant(
        self,
        conversation_id: str,
        participant_id: str,
        *,
        state: str | None = None,
        held: bool | None = None,
        muted: bool | None = None,
    ) -> Participant:
        """PATCH a participant: answer (``connected``), hang up (``disconnected``), hold, mute."""
        conversation, participant = self.participant(conversation_id, participant_id)
        changed = False
        if state is not None:
            if state == "connected":
                if participant.state == "alerting":
                    self._connect(conversation, participant)
                elif participant.state != "connected":
                    raise bad_request(
                        f"participant {participant_id} is {participant.state} and cannot connect"
                    )
            elif state == "disconnected":
                if participant.active:
                    self._disconnect(conversation, participant)
            else:
                raise bad_request(
                    f"state {state!r} is not supported; use connected or disconnected"
                )
        if held is not None and held != participant.held and participant.state == "connected":
            participant.held = held
            changed = True
        if muted is not None and muted != participant.muted and participant.state == "connected":
            participant.muted = muted
            changed = True
        if changed:
            self._publish_conversation(conversation)
        return participant

    def _connect(self, conversation: Conversation, participant: Participant) -> None:
        now = self.clock.now()
        self._cancel(f"alert:{participant.id}")
        participant.state = "connected"
        participant.connected_time = now
        participant.wrapup_required = participant.purpose == "agent"
        acd = conversation.by_purpose("acd")
        if acd is not None and acd.state == "connected":
            acd.state = "disconnected"
            acd.disconnect_type = "transfer"
            acd.end_time = now
        self._publish_conversation(conversation)

    def _disconnect(self, conversation: Conversation, participant: Participant) -> None:
        """The agent hangs up (or declines while alerting)."""
        now = self.clock.now()
        self._cancel(f"alert:{participant.id}")
        was_connected = participant.state == "connected"
        participant.state = "disconnected"
        participant.disconnect_type = "client"
        participant.end_time = now
        participant.held = False
        if was_connected:
            customer = conversation.by_purpose("customer")
            if customer is not None and customer.active:
                customer.state = "disconnected"
                customer.disconnect_type = "peer"
                customer.end_time = now
            conversation.end_time = now
            self._start_acw(conversation, participant)
        else:
            participant.wrapup_required = False
            if participant.user_id is not None:
                conversation.declined_by.add(participant.user_id)
        self._refresh_participant_user(participant)
        self._publish_conversation(conversation)
        self._dispatch()

    def customer_disconnect(self, conversation_id: str) -> Conversation:
        """The customer hangs up: the agent's call ends (after-call work if it was connected)."""
        conversation = self.conversation(conversation_id)
        if conversation.end_time is not None:
            return conversation
        now = self.clock.now()
        customer = conversation.by_purpose("customer")
        if customer is not None and customer.active:
            customer.state = "disconnected"
            customer.disconnect_type = "endpoint"
            customer.end_time = now
        acd = conversation.by_purpose("acd")
        if acd is not None and acd.active:
            acd.state = "disconnected"
            acd.disconnect_type = "peer"
            acd.end_time = now
        conversation.end_time = now
        agent = conversation.current_agent()
        if agent is not None:
            self._cancel(f"alert:{agent.id}")
            was_connected = agent.state == "connected"
            agent.state = "disconnected"
            agent.disconnect_type = "peer"
            agent.end_time = now
            agent.held = False
            if was_connected:
                self._start_acw(conversation, agent)
            else:
                agent.wrapup_required = False
            self._refresh_participant_user(agent)
        self._publish_conversation(conversation)
        self._dispatch()
        return conversation

    def _start_acw(self, conversation: Conversation, participant: Participant) -> None:
        now = self.clock.now()
        participant.wrapup_required = True
        participant.acw_start = now
        if participant.wrapup is not None:  # wrap-up code given while connected: no ACW
            participant.acw_state = "complete"
            participant.acw_end = now
            return
        participant.acw_state = "pending"
        queue = self.queues.get(conversation.queue_id)
        if queue is not None and queue.wrapup_timeout > 0:
            self._schedule(
                f"acw:{participant.id}",
                queue.wrapup_timeout,
                lambda: self._wrapup_timeout(conversation.id, participant.id),
            )

    def submit_wrapup(
        self,
        conversation_id: str,
        participant_id: str,
        communication_id: str,
        *,
        code: str,
        notes: str | None = None,
        tags: list[str] | None = None,
        duration_seconds: int | None = None,
    ) -> Participant:
        """POST a wrap-up code; completes after-call work (the agent becomes IDLE)."""
        conversation, participant = self.participant(conversation_id, participant_id)
        if communication_id != participant.call_id:
            raise not_found("Communication", communication_id)
        if participant.purpose != "agent":
            raise bad_request(f"participant {participant_id} is not an agent")
        name = self.wrapup_codes.get(code)
        if name is None:
            raise bad_request(f"wrap-up code {code!r} does not exist")
        now = self.clock.now()
        participant.wrapup = wrapup_entry(
            code,
            name,
            now=now,
            duration_seconds=duration_seconds
            if duration_seconds is not None
            else acw_seconds(participant, now),
            notes=notes or "",
            tags=tags,
        )
        if participant.in_acw:
            self._finish_acw(participant, now)
        self._refresh_participant_user(participant)
        self._publish_conversation(conversation)
        self._dispatch()
        return participant

    def _finish_acw(self, participant: Participant, now: datetime) -> None:
        self._cancel(f"acw:{participant.id}")
        participant.acw_state = "complete"
        participant.acw_end = now

    def _wrapup_timeout(self, conversation_id: str, participant_id: str) -> None:
        self._timers.pop(f"acw:{participant_id}", None)
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return
        participant = next((p for p in conversation.participants if p.id == participant_id), None)
        if participant is None or not participant.in_acw:
            return
        now = self.clock.now()
        participant.wrapup = wrapup_entry(
            *WRAPUP_TIMEOUT_CODE, now=now, duration_seconds=acw_seconds(participant, now)
        )
        self._finish_acw(participant, now)
        logger.debug("sandbox: wrap-up timed out on %s", conversation_id)
        self._refresh_participant_user(participant)
        self._publish_conversation(conversation)
        self._dispatch()

    def _alert_timeout(self, conversation_id: str, participant_id: str) -> None:
        self._timers.pop(f"alert:{participant_id}", None)
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return
        participant = next((p for p in conversation.participants if p.id == participant_id), None)
        if participant is None or participant.state != "alerting":
            return
        participant.state = "disconnected"
        participant.disconnect_type = "transfer.noanswer"
        participant.end_time = self.clock.now()
        participant.wrapup_required = False
        logger.debug("sandbox: alert timed out on %s", conversation_id)
        if participant.user_id is not None and participant.user_id in self.users:
            user = self.users[participant.user_id]
            if user.presence == ON_QUEUE:
                user.not_responding = True
            self._refresh(user)
        self._publish_conversation(conversation)
        self._dispatch()

    def abandon_alerts(self, user_id: str) -> list[str]:
        """Every call alerting on ``user_id`` goes unanswered, as when its alerting times out.

        The agent's leg ends (``transfer.noanswer``), the user becomes ``NOT_RESPONDING`` when
        On Queue, and each call goes back to the queue (offered to another idle member, or
        waiting). Connected calls and after-call work are not touched. Returns the conversation
        ids.
        """
        alerting = [
            (conversation.id, participant.id)
            for conversation, participant in self.agent_participants(user_id)
            if participant.state == "alerting"
        ]
        for conversation_id, participant_id in alerting:
            self._alert_timeout(conversation_id, participant_id)
        return [conversation_id for conversation_id, _ in alerting]

    def _refresh_participant_user(self, participant: Participant) -> None:
        if participant.user_id is not None and participant.user_id in self.users:
            self._refresh(self.users[participant.user_id])

    def _publish_conversation(self, conversation: Conversation) -> None:
        body = views.conversation_event(conversation)  # the event model, not the REST body
        notified: set[str] = set()
        for participant in conversation.participants:
            uid = participant.user_id
            if participant.purpose == "agent" and uid is not None and uid not in notified:
                notified.add(uid)
                self.events.publish(f"v2.users.{uid}.conversations", body)
        self.events.publish(f"v2.routing.queues.{conversation.queue_id}.conversations", body)

    def _prune_conversations(self) -> None:
        ended = [c.id for c in self.conversations.values() if c.end_time is not None and not any(
            p.in_acw for p in c.participants)]
        for conversation_id in ended[: max(0, len(ended) - _MAX_ENDED_CONVERSATIONS)]:
            del self.conversations[conversation_id]

    # ------------------------------------------------------------------ timers
    def _schedule(self, key: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel(key)
        try:
            self._timers[key] = self.clock.call_later(delay, callback)
        except RuntimeError:  # not on the event loop (direct use in tests): no timers
            return

    def _cancel(self, key: str) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def close(self) -> None:
        """Cancel every timer."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ admin view
    def snapshot(self) -> dict[str, Any]:
        """Users, queues and conversations as plain JSON (for ``GET /sandbox/v1/state``)."""
        return views.snapshot(self)
