"""JSON shapes of the sandbox's resources, with the field names of the platform API (camelCase).

Each function takes domain objects from ``model.py`` and returns a JSON-serialisable dict that
deserializes cleanly into the official SDK's model of the same resource.

Why one module of about 750 lines: one concern, the platform's JSON shapes, one small function
per resource (users, presence, routing status, queues, conversations, participants, events,
OAuth clients, roles, the admin snapshot); the resources share their helpers (timestamps,
paging, self URIs), and a reader looking for one shape finds all of them here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from chaosgenesys.sandbox.clock import iso
from chaosgenesys.sandbox.presence import OFFLINE, ON_QUEUE, PresenceDefinition

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.sandbox.model import (
        Conversation,
        Participant,
        Queue,
        QueueMember,
        User,
    )
    from chaosgenesys.sandbox.tokens import OAuthClient, Role, TokenStore



class StateView(Protocol):
    """What the views read of the sandbox's state (``state.SandboxState`` has it): a protocol,
    so that this module, which the state imports, does not import the state back."""

    users: dict[str, User]
    queues: dict[str, Queue]
    conversations: dict[str, Conversation]
    tokens: TokenStore

    def conversation_counts(self, user_id: str) -> tuple[int, int]: ...

    def agent_participants(self, user_id: str) -> Iterator[tuple[Conversation, Participant]]: ...

    def user_queues(self, user_id: str) -> list[tuple[Queue, QueueMember]]: ...


ORG_ID = "9d0f3f6b-0000-4000-8000-00000000000f"
ORG_NAME = "Chaos Sandbox"
DIVISION_ID = "8a7c2f10-0000-4000-8000-0000000000d1"

_MEDIA_TYPES = ("call", "callback", "email", "message", "chat", "socialExpression", "video")


def _iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values, as the platform omits absent fields."""
    return {key: value for key, value in data.items() if value is not None}


def division() -> dict[str, Any]:
    """The sandbox's one division."""
    return {
        "id": DIVISION_ID,
        "name": "Home",
        "selfUri": f"/api/v2/authorization/divisions/{DIVISION_ID}",
    }


def organization() -> dict[str, Any]:
    """The sandbox organization as a NamedEntity."""
    return {"id": ORG_ID, "name": ORG_NAME}


def listing(
    entities: Sequence[Any],
    page_size: int,
    page_number: int,
    path: str,
    query: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An entity listing page: ``entities, pageSize, pageNumber, total, pageCount`` and URIs."""
    total = len(entities)
    page_count = math.ceil(total / page_size) if total else 0
    start = (page_number - 1) * page_size
    extra = {key: value for key, value in (query or {}).items()
             if key not in ("pageSize", "pageNumber")}

    def uri(number: int) -> str:
        return f"{path}?{urlencode({**extra, 'pageSize': page_size, 'pageNumber': number})}"

    return _compact(
        {
            "entities": list(entities[start : start + page_size]),
            "pageSize": page_size,
            "pageNumber": page_number,
            "total": total,
            "pageCount": page_count,
            "firstUri": uri(1),
            "selfUri": uri(page_number),
            "lastUri": uri(max(page_count, 1)),
            "nextUri": uri(page_number + 1) if page_number < page_count else None,
            "previousUri": uri(page_number - 1) if page_number > 1 else None,
        }
    )


# ---------------------------------------------------------------------- presence
def presence_definition_ref(definition: PresenceDefinition) -> dict[str, Any]:
    """``{id, systemPresence, selfUri}`` as embedded in a user's presence."""
    return {
        "id": definition.id,
        "systemPresence": definition.name,
        "selfUri": f"/api/v2/presencedefinitions/{definition.id}",
    }


def presence_definition(definition: PresenceDefinition) -> dict[str, Any]:
    """An entity of ``GET /api/v2/presence/definitions`` (systemPresence spelled ``OnQueue``)."""
    return {
        "id": definition.id,
        "name": definition.name,
        "type": "System",
        "languageLabels": {"en_US": definition.name},
        "systemPresence": definition.definitions_name,
        "divisionId": DIVISION_ID,
        "deactivated": False,
        "selfUri": f"/api/v2/presence/definitions/{definition.id}",
    }


def system_presence(definition: PresenceDefinition) -> dict[str, Any]:
    """An item of ``GET /api/v2/systempresences`` (the SDKs' ``SystemPresence``: id, name,
    selfUri). The platform's ids for them could not be confirmed; the sandbox uses the analytics
    spelling (``ON_QUEUE``) as id and the REST spelling (``On Queue``) as name."""
    ident = definition.analytics_name
    return {
        "id": ident,
        "name": definition.name,
        "selfUri": f"/api/v2/systempresences/{ident}",
    }


def organization_presence(definition: PresenceDefinition, created: datetime) -> dict[str, Any]:
    """An entity of the older ``GET /api/v2/presencedefinitions``."""
    return {
        "id": definition.id,
        "name": definition.name,
        "languageLabels": {"en_US": definition.name},
        "systemPresence": definition.name,
        "deactivated": False,
        "primary": True,
        "createdDate": iso(created),
        "modifiedDate": iso(created),
        "selfUri": f"/api/v2/presencedefinitions/{definition.id}",
    }


def user_presence(user: User) -> dict[str, Any]:
    """UserPresence of ``GET|PATCH /api/v2/users/{id}/presences/purecloud``."""
    return {
        "id": "PURECLOUD",
        "name": "PURECLOUD",
        "source": "PURECLOUD",
        "sourceId": "PURECLOUD",
        "primary": True,
        "presenceDefinition": presence_definition_ref(user.presence),
        "message": user.presence_message,
        "modifiedDate": iso(user.presence_modified),
        "selfUri": f"/api/v2/users/{user.id}/presences/purecloud",
    }


def bulk_presence(user: User) -> dict[str, Any]:
    """UcUserPresence of ``GET /api/v2/users/presences/purecloud/bulk``."""
    return {
        "userId": user.id,
        "source": "PURECLOUD",
        "sourceId": "PURECLOUD",
        "presenceDefinition": {"id": user.presence.id, "systemPresence": user.presence.name},
        "message": user.presence_message,
        "modifiedDate": iso(user.presence_modified),
    }


def routing_status(user: User) -> dict[str, Any]:
    """RoutingStatus ``{userId, status, startTime}``."""
    return {"userId": user.id, "status": user.routing_status, "startTime": iso(user.routing_start)}


# ---------------------------------------------------------------------- users
def conversation_summary(state: StateView, user: User) -> dict[str, Any]:
    """UserConversationSummary: ACD calls active and in after-call work."""
    active, acw = state.conversation_counts(user.id)
    summary: dict[str, Any] = {"userId": user.id}
    for media in _MEDIA_TYPES:
        summary[media] = {
            "contactCenter": {"active": 0, "acw": 0},
            "enterprise": {"active": 0, "acw": 0},
        }
    summary["call"]["contactCenter"] = {"active": active, "acw": acw}
    return summary


def user(state: StateView, entity: User, expand: set[str] | frozenset[str] = frozenset()
         ) -> dict[str, Any]:
    """A User, with ``presence``, ``routingStatus`` and ``conversationSummary`` expands."""
    body: dict[str, Any] = {
        "id": entity.id,
        "name": entity.name,
        "division": division(),
        "chat": {"jabberId": f"{entity.id}@sandbox.invalid"},
        "state": "active",
        "username": entity.email or f"{entity.id}@sandbox.invalid",
        "version": entity.version,
        "acdAutoAnswer": False,
        "selfUri": f"/api/v2/users/{entity.id}",
    }
    if entity.email:
        body["email"] = entity.email
    if "routingStatus" in expand:
        body["routingStatus"] = routing_status(entity)
    if "presence" in expand:
        body["presence"] = {
            "source": "PURECLOUD",
            "presenceDefinition": presence_definition_ref(entity.presence),
            "message": entity.presence_message,
            "modifiedDate": iso(entity.presence_modified),
            "selfUri": f"/api/v2/users/{entity.id}/presences",
        }
    if "conversationSummary" in expand:
        body["conversationSummary"] = conversation_summary(state, entity)
    return body


def agent_status(state: StateView, entity: User) -> dict[str, Any]:
    """AnalyticsAgentStateAgentResponse of ``GET /api/v2/analytics/agents/{id}/status``."""
    sessions = []
    for conversation, participant in state.agent_participants(entity.id):
        if not (participant.active or participant.in_acw):
            continue
        if participant.state == "alerting":
            segment, start = "alert", participant.start_alerting_time
        elif participant.state == "connected":
            segment, start = "interact", participant.connected_time
        else:
            segment, start = "wrapup", participant.acw_start
        sessions.append(
            _compact(
                {
                    "conversationId": conversation.id,
                    "sessionId": participant.call_id,
                    "sessionStart": _iso(participant.start_time),
                    "segmentStart": _iso(start),
                    "segmentType": segment,
                    "routedQueueId": conversation.queue_id,
                    "originatingDirection": "inbound",
                    "mediaType": "voice",
                }
            )
        )
    return {
        "userId": entity.id,
        "divisionId": DIVISION_ID,
        "userName": entity.name,
        "sessionCount": len(sessions),
        "sessions": sessions,
        "systemPresence": entity.presence.analytics_name,
        "organizationPresenceId": entity.presence.id,
        "presenceDate": iso(entity.presence_modified),
        "routingStatus": entity.routing_status,
        "routingStatusDate": iso(entity.routing_start),
        "isOutOfOffice": False,
    }


# ---------------------------------------------------------------------- notification bodies
def presence_event(entity: User) -> dict[str, Any]:
    """Body of ``v2.users.{id}.presence``."""
    return {
        "source": "PURECLOUD",
        "presenceDefinition": {"id": entity.presence.id, "systemPresence": entity.presence.name},
        "primary": True,
        "message": entity.presence_message,
        "modifiedDate": iso(entity.presence_modified),
    }


def routing_status_event(entity: User) -> dict[str, Any]:
    """Body of ``v2.users.{id}.routingStatus``."""
    return {
        "id": entity.id,
        "routingStatus": {"status": entity.routing_status, "startTime": iso(entity.routing_start)},
    }


def activity_event(state: StateView, entity: User) -> dict[str, Any]:
    """Body of ``v2.users.{id}.activity`` (presence spelled ``ON_QUEUE``)."""
    active_queues = (
        [queue.id for queue, member in state.user_queues(entity.id) if member.joined]
        if entity.presence == ON_QUEUE
        else []
    )
    return {
        "id": entity.id,
        "routingStatus": {"status": entity.routing_status, "startTime": iso(entity.routing_start)},
        "presence": {
            "presenceDefinition": {
                "id": entity.presence.id,
                "systemPresence": entity.presence.analytics_name,
            },
            "presenceMessage": entity.presence_message,
            "modifiedDate": iso(entity.presence_modified),
        },
        "outOfOffice": {"active": False},
        "activeQueueIds": active_queues,
    }


# ---------------------------------------------------------------------- queues
def queue(state: StateView, entity: Queue) -> dict[str, Any]:
    """A Queue."""
    joined = sum(1 for member in entity.members.values() if member.joined)
    timeout_ms = int(entity.wrapup_timeout * 1000)
    return {
        "id": entity.id,
        "name": entity.name,
        "division": division(),
        "dateCreated": iso(entity.date_created),
        "memberCount": len(entity.members),
        "userMemberCount": len(entity.members),
        "joinedMemberCount": joined,
        "mediaSettings": {
            "call": {
                "alertingTimeoutSeconds": int(entity.alerting_timeout),
                "serviceLevel": {"percentage": 0.8, "durationMs": 20000},
            }
        },
        "acwSettings": {
            "wrapupPrompt": "MANDATORY_TIMEOUT" if timeout_ms > 0 else "MANDATORY",
            **({"timeoutMs": timeout_ms} if timeout_ms > 0 else {}),
        },
        "skillEvaluationMethod": "BEST",
        "selfUri": f"/api/v2/routing/queues/{entity.id}",
    }


def user_queue(state: StateView, entity: Queue, member: QueueMember) -> dict[str, Any]:
    """A UserQueue of ``GET /api/v2/users/{id}/queues``."""
    return {**queue(state, entity), "joined": member.joined}


def queue_member(state: StateView, entity: Queue, member: QueueMember) -> dict[str, Any]:
    """A QueueMember of ``GET /api/v2/routing/queues/{id}/members``."""
    agent = state.users[member.user_id]
    return {
        "id": agent.id,
        "name": agent.name,
        "user": {
            "id": agent.id,
            "name": agent.name,
            "division": division(),
            "state": "active",
            "version": agent.version,
            "presence": {
                "source": "PURECLOUD",
                "presenceDefinition": presence_definition_ref(agent.presence),
                "message": agent.presence_message,
                "modifiedDate": iso(agent.presence_modified),
            },
            "selfUri": f"/api/v2/users/{agent.id}",
        },
        "ringNumber": 1,
        "joined": member.joined,
        "memberBy": "user",
        "routingStatus": routing_status(agent),
        "selfUri": f"/api/v2/users/{agent.id}",
    }


def wrapup_code(code_id: str, name: str) -> dict[str, Any]:
    """A WrapupCode."""
    return {
        "id": code_id,
        "name": name,
        "division": division(),
        "selfUri": f"/api/v2/routing/wrapupcodes/{code_id}",
    }


# ---------------------------------------------------------------------- conversations
def _after_call_work(participant: Participant) -> dict[str, Any] | None:
    if participant.acw_state is None:
        return None
    return _compact(
        {
            "state": participant.acw_state,
            "startTime": _iso(participant.acw_start),
            "endTime": _iso(participant.acw_end),
        }
    )


def call(participant: Participant) -> dict[str, Any]:
    """The Call (media) of a participant: where the state lives."""
    return _compact(
        {
            "id": participant.call_id,
            "state": participant.state,
            "initialState": participant.initial_state,
            "direction": participant.direction,
            "recording": False,
            "recordingState": "none",
            "muted": participant.muted,
            "confined": False,
            "held": participant.held,
            "disconnectType": participant.disconnect_type,
            "startAlertingTime": _iso(participant.start_alerting_time),
            "connectedTime": _iso(participant.connected_time),
            "disconnectedTime": _iso(participant.end_time),
            "provider": "Edge",
            "self": {"nameRaw": participant.name, "addressNormalized": participant.address},
            "wrapup": participant.wrapup,
            "afterCallWork": _after_call_work(participant),
            "afterCallWorkRequired": participant.wrapup_required
            if participant.purpose == "agent"
            else None,
        }
    )


def participant(entity: Participant) -> dict[str, Any]:
    """A Participant of ``GET /api/v2/conversations/{id}`` (state in ``calls[]``)."""
    return _compact(
        {
            "id": entity.id,
            "startTime": iso(entity.start_time),
            "endTime": _iso(entity.end_time),
            "connectedTime": _iso(entity.connected_time),
            "name": entity.name,
            "userUri": f"/api/v2/users/{entity.user_id}" if entity.user_id else None,
            "userId": entity.user_id,
            "queueId": entity.queue_id,
            "purpose": entity.purpose,
            "address": entity.address,
            "wrapupRequired": entity.wrapup_required,
            "wrapupPrompt": entity.wrapup_prompt,
            "wrapupTimeoutMs": entity.wrapup_timeout_ms,
            "wrapup": entity.wrapup,
            "alertingTimeoutMs": entity.alerting_timeout_ms,
            "attributes": {},
            "calls": [call(entity)],
            "chats": [],
            "startAcwTime": _iso(entity.acw_start),
            "endAcwTime": _iso(entity.acw_end),
        }
    )


def _divisions() -> list[dict[str, Any]]:
    return [
        {
            "division": {"id": DIVISION_ID,
                         "selfUri": f"/api/v2/authorization/divisions/{DIVISION_ID}"},
            "entities": [],
        }
    ]


def conversation(entity: Conversation) -> dict[str, Any]:
    """A Conversation of ``GET /api/v2/conversations/{id}``."""
    return _compact(
        {
            "id": entity.id,
            "startTime": iso(entity.start_time),
            "endTime": _iso(entity.end_time),
            "address": entity.address,
            "participants": [participant(p) for p in entity.participants],
            "recordingState": "NONE",
            "divisions": _divisions(),
            "selfUri": f"/api/v2/conversations/{entity.id}",
        }
    )


def call_participant(entity: Participant) -> dict[str, Any]:
    """A CallMediaParticipant of ``GET /api/v2/conversations/calls/{id}`` (state directly)."""
    return _compact(
        {
            "id": entity.id,
            "name": entity.name,
            "address": entity.address,
            "startTime": iso(entity.start_time),
            "startAlertingTime": _iso(entity.start_alerting_time),
            "connectedTime": _iso(entity.connected_time),
            "endTime": _iso(entity.end_time),
            "purpose": entity.purpose,
            "state": entity.state,
            "direction": entity.direction,
            "disconnectType": entity.disconnect_type,
            "held": entity.held,
            "wrapupRequired": entity.wrapup_required,
            "wrapupPrompt": entity.wrapup_prompt,
            "user": {"id": entity.user_id, "selfUri": f"/api/v2/users/{entity.user_id}"}
            if entity.user_id
            else None,
            "queue": {"id": entity.queue_id, "selfUri": f"/api/v2/routing/queues/{entity.queue_id}"}
            if entity.queue_id
            else None,
            "attributes": {},
            "wrapupTimeoutMs": entity.wrapup_timeout_ms,
            "alertingTimeoutMs": entity.alerting_timeout_ms,
            "provider": "Edge",
            "wrapup": entity.wrapup,
            "startAcwTime": _iso(entity.acw_start),
            "endAcwTime": _iso(entity.acw_end),
            "muted": entity.muted,
            "confined": False,
            "recording": False,
            "recordingState": "none",
            "ani": entity.address if entity.purpose == "customer" else None,
        }
    )


def call_conversation(entity: Conversation) -> dict[str, Any]:
    """A CallConversation of ``GET /api/v2/conversations/calls/{id}``."""
    return {
        "id": entity.id,
        "participants": [call_participant(p) for p in entity.participants],
        "otherMediaUris": [],
        "recordingState": "none",
        "divisions": _divisions(),
        "selfUri": f"/api/v2/conversations/calls/{entity.id}",
    }


# ---------------------------------------------------------------------- conversation events
#: The fields of the event models' wrap-up (``ConversationEventTopicWrapup``): no ``name``.
_EVENT_WRAPUP_KEYS = ("code", "notes", "tags", "durationSeconds", "endTime")


def _event_wrapup(wrapup: dict[str, Any] | None) -> dict[str, Any] | None:
    if not wrapup:
        return None
    return {key: wrapup[key] for key in _EVENT_WRAPUP_KEYS if key in wrapup}


def event_call(participant: Participant) -> dict[str, Any]:
    """``ConversationEventTopicCall``: the REST Call without ``startAlertingTime``."""
    return _compact(
        {
            "id": participant.call_id,
            "state": participant.state,
            "initialState": participant.initial_state,
            "recording": False,
            "recordingState": "none",
            "muted": participant.muted,
            "confined": False,
            "held": participant.held,
            "disconnectType": participant.disconnect_type,
            "direction": participant.direction,
            "self": {"nameRaw": participant.name, "addressNormalized": participant.address},
            "provider": "Edge",
            "connectedTime": _iso(participant.connected_time),
            "disconnectedTime": _iso(participant.end_time),
            "wrapup": _event_wrapup(participant.wrapup),
            "afterCallWork": _after_call_work(participant),
            "afterCallWorkRequired": participant.wrapup_required
            if participant.purpose == "agent"
            else None,
        }
    )


def event_participant(entity: Participant) -> dict[str, Any]:
    """``ConversationEventTopicParticipant``: no ``startTime``, ``userUri`` or ``chats``."""
    return _compact(
        {
            "id": entity.id,
            "connectedTime": _iso(entity.connected_time),
            "endTime": _iso(entity.end_time),
            "userId": entity.user_id,
            "name": entity.name,
            "queueId": entity.queue_id,
            "purpose": entity.purpose,
            "address": entity.address,
            "wrapupRequired": entity.wrapup_required,
            "wrapupPrompt": entity.wrapup_prompt,
            "wrapupTimeoutMs": entity.wrapup_timeout_ms,
            "wrapup": _event_wrapup(entity.wrapup),
            "startAcwTime": _iso(entity.acw_start),
            "endAcwTime": _iso(entity.acw_end),
            "conversationRoutingData": {"queue": {"id": entity.queue_id}}
            if entity.queue_id
            else None,
            "alertingTimeoutMs": entity.alerting_timeout_ms,
            "attributes": {},
            "calls": [event_call(entity)],
        }
    )


def conversation_event(entity: Conversation) -> dict[str, Any]:
    """The ``eventBody`` of ``v2.users.{id}.conversations`` and
    ``v2.routing.queues.{id}.conversations``.

    The event models (``ConversationEventTopicConversation`` and
    ``QueueConversationEventTopicConversation``, the same fields) are not the REST
    ``Conversation``: no ``startTime``, ``endTime`` or ``selfUri`` on the conversation, no
    ``startTime`` or ``userUri`` on a participant, no ``startAlertingTime`` on a call and no
    ``name`` in a wrap-up. A client that needs those reads ``GET /api/v2/conversations/{id}``.
    """
    return _compact(
        {
            "id": entity.id,
            "participants": [event_participant(p) for p in entity.participants],
            "recordingState": "NONE",
            "address": entity.address,
            "divisions": _divisions(),
        }
    )


# ---------------------------------------------------------------------- authorization
def oauth_client(client: OAuthClient) -> dict[str, Any]:
    """``GET /api/v2/oauth/clients/{id}`` (SDK model ``OAuthClient``). The secret is never
    served (the platform shows it to admins; the sandbox keeps secrets out of every answer).
    A confidential client is a client-credentials one (its ``roleDivisions`` in the one
    division); the built-in public desktop client is an authorization-code one, without roles.
    """
    return _compact(
        {
            "id": client.client_id,
            "name": client.client_id,
            "accessTokenValiditySeconds": client.token_lifetime,
            "registeredRedirectUri": list(client.redirect_uris) or None,
            "dateCreated": iso(client.date_created),
            "authorizedGrantType": "CODE" if client.public else "CLIENT-CREDENTIALS",
            "scope": list(client.scopes),
            "roleDivisions": [
                {"roleId": role_id, "divisionId": client.division or DIVISION_ID}
                for role_id in client.role_ids
            ],
            "state": "active",
            "selfUri": f"/api/v2/oauth/clients/{client.client_id}",
        }
    )


def permission_policies(permissions: Sequence[str]) -> list[dict[str, Any]]:
    """``domain:entity:action`` strings as the platform's ``permissionPolicies``: one policy per
    domain and entity, its actions in ``actionSet`` (``*`` kept as the wildcard it is)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for permission in permissions:
        domain, entity, action = permission.split(":")
        actions = grouped.setdefault((domain, entity), [])
        if action not in actions:
            actions.append(action)
    return [
        {"domain": domain, "entityName": entity, "actionSet": actions, "allowConditions": False}
        for (domain, entity), actions in grouped.items()
    ]


def role(entity: Role) -> dict[str, Any]:
    """``GET /api/v2/authorization/roles/{id}`` (SDK model ``DomainOrganizationRole``).
    ``permissions`` holds general permissions (``group_creation``): none in the sandbox; the
    role's ``domain:entity:action`` grants are its ``permissionPolicies``. No user holds a
    sandbox role (clients do): ``userCount`` 0."""
    return {
        "id": entity.id,
        "name": entity.name,
        "permissions": [],
        "permissionPolicies": permission_policies(entity.permissions),
        "userCount": 0,
        "base": False,
        "default": False,
        "selfUri": f"/api/v2/authorization/roles/{entity.id}",
    }


# ---------------------------------------------------------------------- admin
def snapshot(state: StateView) -> dict[str, Any]:
    """Users, queues, conversations and OAuth clients for the admin state view."""
    return {
        "users": [
            {
                "id": entity.id,
                "name": entity.name,
                "presence": entity.presence.name,
                "presenceId": entity.presence.id,
                "routingStatus": entity.routing_status,
                "routingStatusStartTime": iso(entity.routing_start),
                "version": entity.version,
                "activeCalls": state.conversation_counts(entity.id)[0],
                "acwCalls": state.conversation_counts(entity.id)[1],
                "loggedIn": entity.presence != OFFLINE,
            }
            for entity in state.users.values()
        ],
        "queues": [
            {
                "id": entity.id,
                "name": entity.name,
                "members": [
                    {"userId": member.user_id, "joined": member.joined}
                    for member in entity.members.values()
                ],
                "waiting": sum(
                    1 for c in state.conversations.values() if c.queue_id == entity.id and c.waiting
                ),
                "wrapupTimeout": entity.wrapup_timeout,
                "alertingTimeout": entity.alerting_timeout,
            }
            for entity in state.queues.values()
        ],
        "conversations": [
            {
                "id": entity.id,
                "queueId": entity.queue_id,
                "startTime": iso(entity.start_time),
                "endTime": _iso(entity.end_time),
                "waiting": entity.waiting,
                "participants": [
                    _compact(
                        {
                            "id": p.id,
                            "purpose": p.purpose,
                            "userId": p.user_id,
                            "state": p.state,
                            "callId": p.call_id,
                            "afterCallWork": p.acw_state,
                        }
                    )
                    for p in entity.participants
                ],
            }
            for entity in state.conversations.values()
        ],
        "clients": [
            {"clientId": client.client_id, "tokenLifetime": client.token_lifetime,
             "activeTokens": state.tokens.active_count().get(client.client_id, 0),
             "scopes": list(client.scopes), "roleIds": list(client.role_ids)}
            for client in state.tokens.clients.values()
        ],
    }
