"""The agent's local interaction store, with a version per interaction and optimistic locking.

Each interaction (a conversation the agent takes part in) keeps:

- ``server_marker``: the server's version of it as last seen. Conversations carry no version
  number, so the marker is their modification time: the latest timestamp in the agent's
  participant that both shapes carry (connected, disconnected, after-call work, wrap-up end).
  Start and alerting times are left out: they never change, and the notification event models
  (``ConversationEventTopic*``) do not carry them, so an event and a re-read of the same
  alerting call would otherwise disagree and the re-read would look like a newer server state.
- ``local_version``: bumped on every local change.
- ``pending``: a local change not yet accepted by the server (answer, hang up, wrap-up), with
  ``base_marker``, the server marker it was decided on.

After a reconnect the agent re-reads each open interaction and calls :func:`server_is_newer`:
when the server changed since the change was decided, the resilient agent discards the change
("last known good state"); the naive one sends it anyway, and that is a consistency violation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Interaction",
    "InteractionStore",
    "PendingChange",
    "agent_participant",
    "participant_marker",
    "server_is_newer",
]

_TIME_KEYS = ("connectedTime", "endTime", "startAcwTime", "endAcwTime")
_CALL_TIME_KEYS = ("connectedTime", "disconnectedTime")


@dataclass
class PendingChange:
    """A local change waiting to reach the server."""

    kind: str  # "answer", "hangup" or "wrapup"
    base_marker: str
    created_at: float = field(default_factory=time.monotonic)
    body: dict[str, Any] = field(default_factory=dict)
    #: On its way to the server now: a second sender (a retry beside a reconnect's re-read)
    #: leaves it alone, so a change is never sent twice at once.
    sending: bool = False


@dataclass
class Interaction:
    """One conversation as the agent knows it."""

    conversation_id: str
    participant_id: str = ""
    communication_id: str = ""
    state: str = ""  # the agent's call state: alerting, connected, disconnected
    acw_state: str = ""  # pending, complete, ...
    wrapped_up: bool = False
    server_wrapup_code: str = ""
    server_marker: str = ""
    local_version: int = 0
    answered: bool = False
    pending: PendingChange | None = None
    acw_started_at: float | None = None  # monotonic: the wrap-up timer, kept across drops
    done: bool = False

    def change(self, kind: str, body: dict[str, Any] | None = None) -> PendingChange:
        """Record a local change decided on the current server marker."""
        self.local_version += 1
        self.pending = PendingChange(kind, self.server_marker, body=dict(body or {}))
        return self.pending


def agent_participant(conversation: dict[str, Any], user_id: str) -> dict[str, Any] | None:
    """The last agent participant of ``user_id`` in a conversation body (either API shape)."""
    found = None
    for participant in conversation.get("participants") or []:
        if not isinstance(participant, dict):
            continue
        uid = participant.get("userId") or (participant.get("user") or {}).get("id")
        if participant.get("purpose") == "agent" and uid == user_id:
            found = participant
    return found


def _call(participant: dict[str, Any]) -> dict[str, Any]:
    calls = participant.get("calls")
    if isinstance(calls, list) and calls and isinstance(calls[0], dict):
        return calls[0]
    return participant  # /conversations/calls/{id} shape: state on the participant


def participant_marker(participant: dict[str, Any]) -> str:
    """The participant's modification time: its latest timestamp (ISO 8601 sorts as text)."""
    call = _call(participant)
    stamps = [participant.get(key) for key in _TIME_KEYS]
    stamps += [call.get(key) for key in _CALL_TIME_KEYS]
    acw = call.get("afterCallWork")
    if isinstance(acw, dict):
        stamps += [acw.get("startTime"), acw.get("endTime")]
    wrapup = participant.get("wrapup") or call.get("wrapup")
    if isinstance(wrapup, dict):
        stamps.append(wrapup.get("endTime"))
    return max((s for s in stamps if isinstance(s, str)), default="")


def server_is_newer(server_marker: str, change: PendingChange) -> bool:
    """Optimistic locking: the server changed after the local change was decided."""
    return bool(server_marker) and server_marker > change.base_marker


def participant_view(participant: dict[str, Any]) -> dict[str, Any]:
    """State, after-call work and wrap-up of a participant, whatever the API shape."""
    call = _call(participant)
    acw = call.get("afterCallWork")
    wrapup = participant.get("wrapup") or call.get("wrapup")
    return {
        "participant_id": participant.get("id") or "",
        "communication_id": call.get("id") if call is not participant else "",
        "state": call.get("state") or participant.get("state") or "",
        "acw_state": acw.get("state", "") if isinstance(acw, dict) else "",
        "wrapup_required": bool(participant.get("wrapupRequired")),
        "wrapup_code": wrapup.get("code", "") if isinstance(wrapup, dict) else "",
        "disconnect_type": call.get("disconnectType") or "",
        "marker": participant_marker(participant),
    }


__all__ += ["participant_view"]


class InteractionStore:
    """Interactions by conversation id."""

    def __init__(self) -> None:
        self._items: dict[str, Interaction] = {}

    def get(self, conversation_id: str) -> Interaction | None:
        """The interaction, if known."""
        return self._items.get(conversation_id)

    def upsert(self, conversation_id: str) -> Interaction:
        """The interaction, created empty when new."""
        item = self._items.get(conversation_id)
        if item is None:
            item = self._items[conversation_id] = Interaction(conversation_id)
        return item

    def open(self) -> Iterator[Interaction]:
        """Interactions not finished yet."""
        return iter([item for item in self._items.values() if not item.done])

    def __len__(self) -> int:
        return len(self._items)

    def prune(self, keep: int = 200) -> None:
        """Forget the oldest finished interactions beyond ``keep``."""
        finished = [key for key, item in self._items.items() if item.done]
        for key in finished[: max(0, len(finished) - keep)]:
            del self._items[key]
