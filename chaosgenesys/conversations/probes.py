"""Probes that read conversations (calls) and an agent's interactions.

Participant state lives on each media item (``participants[].calls[].state``), not on the
participant. The agent's participant is the one whose ``purpose`` is ``agent`` or ``user`` and
whose ``userId`` is the agent. ``GET /api/v2/conversations`` lists only the calling user's
conversations (empty under client credentials), so an agent's interactions are read from the
``conversationSummary`` expand of the user instead.
"""

import time
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_id, require_number, require_text
from chaosgenesys.platform_reads import experiment_client, get_or_not_found

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = [
    "active_interactions",
    "call_is_connected",
    "get_conversation",
    "participant_state",
    "wait_for_participant_state",
    "wrapup_state",
]

#: The longest ``wait_for_participant_state`` waits (seconds).
MAX_WAIT = 3600.0

_AGENT_PURPOSES = ("agent", "user")
_MEDIA = (
    "calls",
    "callbacks",
    "chats",
    "cobrowsesessions",
    "emails",
    "messages",
    "screenshares",
    "socialExpressions",
    "videos",
)



def _conversation(client: "GenesysClient", conversation_id: str) -> dict[str, Any]:
    body = get_or_not_found(
        client, f"/api/v2/conversations/{conversation_id}", "conversation_id", conversation_id
    )
    if not isinstance(body, dict):
        raise ActivityFailed(f"conversation {conversation_id!r}: the API answered no body")
    return body


def _agent_participant(
    conversation: dict[str, Any], conversation_id: str, user_id: str
) -> dict[str, Any]:
    """The user's agent participant: the latest one still going, else the latest one."""
    candidates = [
        p
        for p in conversation.get("participants") or []
        if isinstance(p, dict)
        and p.get("purpose") in _AGENT_PURPOSES
        and (p.get("userId") == user_id or (p.get("user") or {}).get("id") == user_id)
    ]
    if not candidates:
        raise ActivityFailed(
            f"user {user_id!r} is not an agent participant of conversation {conversation_id!r} "
            f"(user_id={user_id!r})"
        )
    going = [p for p in candidates if not p.get("endTime")]
    return (going or candidates)[-1]


def _media(participant: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(media kind, latest media item) of a participant: calls first."""
    for kind in _MEDIA:
        items = [item for item in participant.get(kind) or [] if isinstance(item, dict)]
        if items:
            going = [
                item for item in items if item.get("state") not in ("disconnected", "terminated")
            ]
            return kind, (going or items)[-1]
    return None, {}


def _after_call_work(participant: dict[str, Any], media: dict[str, Any]) -> dict[str, Any] | None:
    acw = media.get("afterCallWork")
    if isinstance(acw, dict):
        return {
            "state": acw.get("state"),
            "start_time": acw.get("startTime"),
            "end_time": acw.get("endTime"),
        }
    if participant.get("startAcwTime") or participant.get("endAcwTime"):
        return {
            "state": "complete" if participant.get("endAcwTime") else "pending",
            "start_time": participant.get("startAcwTime"),
            "end_time": participant.get("endAcwTime"),
        }
    return None


def _wrapup_required(participant: dict[str, Any], media: dict[str, Any]) -> bool:
    return bool(participant.get("wrapupRequired") or media.get("afterCallWorkRequired"))


def get_conversation(
    conversation_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The conversation as the API returns it (``GET /api/v2/conversations/{id}``).

    An unknown conversation raises ``ActivityFailed`` naming the id.

    ```json
    {"type": "probe", "name": "read-the-call",
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "get_conversation",
                  "arguments": {"conversation_id": "${conversation_id}"}}}
    ```
    """
    require_id("conversation_id", conversation_id)
    return _conversation(experiment_client(configuration, secrets), conversation_id)


def participant_state(
    conversation_id: str,
    user_id: str,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """The agent's side of a conversation.

    Returns ``{"conversation_id", "user_id", "participant_id", "media", "state", "held",
    "wrapup_required", "after_call_work"}`` where ``state`` is the state of the agent's
    latest media item (``alerting``, ``connected``, ``disconnected``, ...) and
    ``after_call_work`` is ``{"state", "start_time", "end_time"}`` or null. A user who is not an
    agent participant of the conversation raises ``ActivityFailed``.

    ```json
    {"type": "probe", "name": "agent-still-on-the-call",
     "tolerance": {"type": "jsonpath", "path": "$.state", "expect": "connected"},
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "participant_state",
                  "arguments": {"conversation_id": "${conversation_id}",
                                "user_id": "${agent_id}"}}}
    ```
    """
    require_id("conversation_id", conversation_id)
    require_id("user_id", user_id)
    conversation = _conversation(experiment_client(configuration, secrets), conversation_id)
    participant = _agent_participant(conversation, conversation_id, user_id)
    kind, media = _media(participant)
    return {
        "conversation_id": conversation_id,
        "user_id": user_id,
        "participant_id": participant.get("id"),
        "media": kind,
        "state": media.get("state", participant.get("state")),
        "held": media.get("held", participant.get("held")),
        "wrapup_required": _wrapup_required(participant, media),
        "after_call_work": _after_call_work(participant, media),
    }


def wait_for_participant_state(
    conversation_id: str,
    user_id: str,
    expected: str,
    timeout: float = 30.0,
    interval: float = 0.5,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until the agent's side of the conversation is in ``expected`` state
    (``connected``: the desktop answered; ``disconnected``; ...); ``true`` if it got there
    within ``timeout`` seconds (at most 3600), ``false`` otherwise. Reads at once, then every
    ``interval`` seconds. Lines a method up with the desktop instead of a fixed pause (a busy
    workstation answers late); API errors after the client's retries raise ``ActivityFailed``.

    ```json
    {"type": "probe", "name": "desktop-answered-within-10s", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "wait_for_participant_state",
                  "arguments": {"conversation_id": "${conversation_id}",
                                "user_id": "${agent_id}", "expected": "connected",
                                "timeout": 10}}}
    ```
    """
    require_id("conversation_id", conversation_id)
    require_id("user_id", user_id)
    wanted = require_text("expected", expected).strip().lower()
    limit = require_number("timeout", timeout, maximum=MAX_WAIT)
    pause = require_number("interval", interval, minimum=0.0, exclusive_minimum=True)
    deadline = time.monotonic() + limit
    while True:
        state = participant_state(conversation_id, user_id, configuration, secrets)["state"]
        if isinstance(state, str) and state.lower() == wanted:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))


def call_is_connected(
    conversation_id: str,
    user_id: str,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Whether the agent's call in the conversation is ``connected`` on the server side.

    The guide's "call state persistence": the call must stay connected server-side even while
    the desktop shows a disconnected banner. Errors as for ``participant_state``.

    ```json
    {"type": "probe", "name": "call-survived", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "call_is_connected",
                  "arguments": {"conversation_id": "${conversation_id}",
                                "user_id": "${agent_id}"}}}
    ```
    """
    state = participant_state(conversation_id, user_id, configuration, secrets)
    return bool(state["state"] == "connected")


def active_interactions(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The agent's interactions by media, from the user's ``conversationSummary``.

    Returns ``{"user_id", "total_active", "total_acw", "by_media": {"call": {"active",
    "acw"}, "chat": {...}, ...}}``, adding contact-center and enterprise interactions. An
    unknown user raises ``ActivityFailed`` naming the id.

    ```json
    {"type": "probe", "name": "no-interaction-routed-during-the-fault",
     "tolerance": {"type": "jsonpath", "path": "$.total_active", "expect": 0},
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "active_interactions", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    body = get_or_not_found(
        experiment_client(configuration, secrets),
        f"/api/v2/users/{user_id}",
        "user_id",
        user_id,
        params={"expand": "conversationSummary"},
    )
    summary = body.get("conversationSummary") if isinstance(body, dict) else None
    by_media: dict[str, dict[str, int]] = {}
    for media, counts in (summary or {}).items():
        if not isinstance(counts, dict):
            continue  # "userId" and similar
        active = acw = 0
        for scope in counts.values():
            if isinstance(scope, dict):
                active += int(scope.get("active") or 0)
                acw += int(scope.get("acw") or 0)
        by_media[media] = {"active": active, "acw": acw}
    return {
        "user_id": user_id,
        "total_active": sum(m["active"] for m in by_media.values()),
        "total_acw": sum(m["acw"] for m in by_media.values()),
        "by_media": by_media,
    }


def wrapup_state(
    conversation_id: str,
    user_id: str,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """The agent's wrap-up in a conversation, and the after-call-work state.

    Returns ``{"conversation_id", "user_id", "participant_id", "status", "code", "name",
    "notes", "wrapup_required", "wrapup_prompt", "after_call_work", "call_state"}`` where
    ``status`` is ``"done"`` (a wrap-up code is set), ``"pending"`` (wrap-up is required, the
    code is not set yet) or ``"none"`` (no wrap-up required). After a network drop during
    wrap-up, a ``"pending"`` that turns ``"none"`` or a code that changes is the guide's
    stale-state bug.

    ```json
    {"type": "probe", "name": "wrap-up-survived",
     "tolerance": {"type": "jsonpath", "path": "$.status", "expect": "done"},
     "provider": {"type": "python", "module": "chaosgenesys.conversations.probes",
                  "func": "wrapup_state",
                  "arguments": {"conversation_id": "${conversation_id}",
                                "user_id": "${agent_id}"}}}
    ```
    """
    require_id("conversation_id", conversation_id)
    require_id("user_id", user_id)
    conversation = _conversation(experiment_client(configuration, secrets), conversation_id)
    participant = _agent_participant(conversation, conversation_id, user_id)
    _, media = _media(participant)
    wrapup = participant.get("wrapup") or media.get("wrapup")
    wrapup = wrapup if isinstance(wrapup, dict) else {}
    required = _wrapup_required(participant, media)
    code = wrapup.get("code")
    if code:
        status = "done"
    elif required:
        status = "pending"
    else:
        status = "none"
    return {
        "conversation_id": conversation_id,
        "user_id": user_id,
        "participant_id": participant.get("id"),
        "status": status,
        "code": code,
        "name": wrapup.get("name"),
        "notes": wrapup.get("notes"),
        "wrapup_required": required,
        "wrapup_prompt": participant.get("wrapupPrompt"),
        "after_call_work": _after_call_work(participant, media),
        "call_state": media.get("state"),
    }
