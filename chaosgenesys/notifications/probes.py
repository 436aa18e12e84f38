"""Probes over the notifications WebSocket, observed from outside the agent desktop.

``watch_events`` opens a notification channel of its own (through the platform client, the
same credentials as every other probe) and follows the users' presence and routing status for
a fixed time. It is meant to run as a **background** activity during the method, so that the
journal shows what the platform saw while the fault was on: how long each agent was not On
Queue, every transition, and whether the notification service itself stayed reachable.
"""

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_ids, require_number

__all__ = ["watch_events"]

#: Users one observer follows at most (each user is up to 20 topics; a channel holds 1,000).
MAX_USERS = 100
#: Longest observation.
MAX_DURATION = 86400.0

_SUFFIXES = frozenset(
    {
        "presence",
        "routingStatus",
        "activity",
        "conversations",
        "conversations.calls",
        "conversationsummary",
        "geolocation",
        "outofoffice",
        "routingLanguages",
        "routingSkills",
        "station",
        "workplan",
    }
)


def _topics(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise ActivityFailed(
            f"topics must be a non-empty list of user topics such as ['presence', "
            f"'routingStatus'], got {value!r}"
        )
    topics: list[str] = []
    for index, topic in enumerate(value):
        if not isinstance(topic, str) or not topic or any(ch.isspace() for ch in topic):
            raise ActivityFailed(f"topics[{index}] must be a topic name, got {topic!r}")
        if not topic.startswith("v2.") and topic not in _SUFFIXES:
            raise ActivityFailed(
                f"topics[{index}] {topic!r} is not a user topic "
                f"({', '.join(sorted(_SUFFIXES))}) nor a full topic name starting with 'v2.'"
            )
        topics.append(topic)
    return topics


def watch_events(
    user_ids: list[str],
    duration: float = 60.0,
    topics: list[str] = ["presence", "routingStatus"],  # noqa: B006 - never mutated
    heartbeat_interval: float = 0.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Watch users' presence and routing status over a notification channel of its own.

    For ``duration`` seconds (counted from the call; it returns on time even while
    reconnecting), subscribes to ``topics`` of each user (suffixes such as ``presence``,
    ``routingStatus``, ``activity``, or full topic names starting with ``v2.``), reads the users'
    state first, then follows the events. If its socket drops (close frame, reset, or silence:
    no heartbeat and no pong), it reconnects with backoff (250 ms to 5 s), to a new channel when
    the old one is gone, and reads the users again so no change is missed.
    ``heartbeat_interval`` (seconds) is the server's expected heartbeat; 0 learns it from the
    heartbeats that arrive (the median gap).

    Returns ``{"started_at", "ended_at", "observed_seconds", "users": {user_id: {"presence",
    "routing_status", "seconds_not_on_queue", "presence_transitions", "routing_transitions",
    "transitions": [{"at", "t", "kind": "presence"|"routing", "from", "to", "source":
    "event"|"resync"}], "events"}}, "seconds_not_on_queue": {user_id: s},
    "max_seconds_not_on_queue", "disconnects", "disconnect_details": [{"at", "t", "code",
    "reason", "reconnect_ms", "new_channel"}], "reconnects", "heartbeats",
    "heartbeat_interval", "missed_heartbeats", "events", "event_counts": {topic: n}, ...}``.
    ``disconnects`` are the observer's own socket drops; ``t`` is seconds since the start.
    Fails (``ActivityFailed``) on bad arguments, an unknown user, or when the first channel
    cannot be set up; later failures are recorded in ``errors`` and the observation goes on.

    Do not subscribe the observer to a user's ``conversations``: the sandbox counts a socket
    subscribed to them as the agent's own session (``docs/platform-reaction.md``).

    ```json
    {"type": "probe", "name": "watch-agents-during-the-fault", "background": true,
     "provider": {"type": "python", "module": "chaosgenesys.notifications.probes",
                  "func": "watch_events",
                  "arguments": {"user_ids": ["${agent_1}", "${agent_2}"], "duration": 20,
                                "topics": ["presence", "routingStatus"]}}}
    ```
    """
    users = require_ids("user_ids", user_ids, max_count=MAX_USERS)
    seconds = require_number(
        "duration", duration, minimum=0.0, maximum=MAX_DURATION, exclusive_minimum=True
    )
    names = _topics(topics)
    interval = require_number("heartbeat_interval", heartbeat_interval, maximum=3600.0)

    from chaosgenesys.notifications.observer import EventObserver
    from chaosgenesys.platform import client_for

    client = client_for(configuration, secrets)
    observer = EventObserver(client, users, names, heartbeat_interval=interval or None)
    return observer.run(seconds)
