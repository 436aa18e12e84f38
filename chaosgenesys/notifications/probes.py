"""Probes over the notifications WebSocket, observed from outside the agent desktop.

``watch_events`` opens a notification channel of its own (through the platform client, the
same credentials as every other probe) and follows the users' presence and routing status for
a fixed time. It is meant to run as a **background** activity during the method, so that the
journal shows what the platform saw while the fault was on: how long each agent was not On
Queue, every transition, and whether the notification service itself stayed reachable.

Verdicts on the path, not only the end state: ``watch_events`` also writes its figures to a
timeline file (``chaosgenesys.notifications.timeline``), which ``longest_not_on_queue`` and
``max_reconnect_latency`` read in the steady-state hypothesis after the method, so a tolerance
can say "never off queue for more than 10 s", not only "back On Queue at the end". The
desktop's own view of the same is ``chaosgenesys.agent.probes``.
"""

import contextlib
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_ids, require_number

__all__ = ["longest_not_on_queue", "max_reconnect_latency", "watch_events"]

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
    timeline_path: str = "",
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
    heartbeats that arrive (the median gap). A fault at the moment it connects (a 503 on the
    channel or its socket, a transport error) does not end it: it retries like a client within
    ``duration`` and reports the time it saw nothing in ``blind_windows``; it fails only on a
    permanent refusal (unknown user, every topic rejected, another 4xx) or when it never
    connected within ``duration``.

    Its figures are also written, every second and at the end, to a timeline file:
    ``timeline_path`` when given (its folder must exist), else a file of this process under
    ``<runtime dir>/observer/`` that ``longest_not_on_queue`` and ``max_reconnect_latency``
    find by themselves (``chaosgenesys.notifications.timeline`` documents the format).

    Returns ``{"started_at", "ended_at", "observed_seconds", "users": {user_id: {"presence",
    "routing_status", "seconds_not_on_queue", "presence_transitions", "routing_transitions",
    "transitions": [{"at", "t", "kind": "presence"|"routing", "from", "to", "source":
    "event"|"resync"}], "not_on_queue_periods": [{"from", "to", "t_from", "t_to", "seconds",
    "presence", "open"}], "longest_not_on_queue_seconds", "events"}}, "seconds_not_on_queue":
    {user_id: s}, "max_seconds_not_on_queue", "longest_not_on_queue_seconds": {user_id: s},
    "disconnects", "disconnect_details": [{"at", "t", "code", "reason", "reconnect_ms",
    "new_channel"}], "reconnects", "connect_ms", "connect_failures", "blind_windows": [{"from",
    "to", "t_from", "t_to", "seconds", "reason"}], "blind_seconds", "heartbeats",
    "heartbeat_interval", "missed_heartbeats", "events", "event_counts": {topic: n},
    "timeline_path", ...}``. ``disconnects`` are the observer's own socket drops; ``t`` is
    seconds since the start. A user's state read at the first connection counts from the start.
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
    from chaosgenesys.notifications import timeline

    if not isinstance(timeline_path, str):
        raise ActivityFailed(f"timeline_path must be a file path or '', got {timeline_path!r}")
    path = timeline.checked_path("timeline_path", timeline_path) if timeline_path else None
    if path is None:
        with contextlib.suppress(OSError):
            timeline.prune_timelines()
        path = timeline.default_path()
    try:
        users = require_ids("user_ids", user_ids, max_count=MAX_USERS)
        seconds = require_number(
            "duration", duration, minimum=0.0, maximum=MAX_DURATION, exclusive_minimum=True
        )
        names = _topics(topics)
        interval = require_number("heartbeat_interval", heartbeat_interval, maximum=3600.0)

        from chaosgenesys.notifications.observer import EventObserver
        from chaosgenesys.platform import client_for

        client = client_for(configuration, secrets)
        observer = EventObserver(client, users, names, heartbeat_interval=interval or None,
                                 timeline=timeline.TimelineWriter(path))
        result = observer.run(seconds)
    except ActivityFailed as error:
        # a background probe's failure does not fail the run: the path probes must see it
        given = user_ids if isinstance(user_ids, list) else [user_ids]
        with contextlib.suppress(OSError):
            timeline.write_failure(path, [u for u in given if isinstance(u, str)], error)
        raise
    result["timeline_path"] = str(path)
    return result


#: (probe, user id, timeline path) this process asked about before any observation existed.
_ASKED_UNOBSERVED: set[tuple[str, str, str]] = set()


def _timeline(probe: str, user_id: str | None, timeline_path: str) -> dict[str, Any] | None:
    """The timeline to judge, or ``None`` when nothing was observed yet (the hypothesis before
    the method: the first call only; asked again with still nothing, it fails)."""
    import logging

    from chaosgenesys.notifications import timeline

    if not isinstance(timeline_path, str):
        raise ActivityFailed(f"timeline_path must be a file path or '', got {timeline_path!r}")
    if timeline_path:
        path = Path(timeline_path).expanduser().absolute()
        unobserved = not path.exists()
    else:
        unobserved = not timeline.own_timelines()
    if unobserved:
        key = (probe, user_id or "", timeline_path)
        if key not in _ASKED_UNOBSERVED:
            _ASKED_UNOBSERVED.add(key)
            logging.getLogger("chaostoolkit").info(
                "%s: no watch_events observation in this run yet (before the method): 0", probe
            )
            return None
        where = repr(timeline_path) if timeline_path else "of this run"
        raise ActivityFailed(
            f"{probe}: still no watch_events timeline {where} since the last check: run "
            "chaosgenesys.notifications.probes.watch_events (a background probe of the method) "
            "for the user, with the same timeline_path if one is given"
        )
    if timeline_path:
        data = timeline.read_timeline(path)
        if user_id is not None and user_id not in (data.get("user_ids") or []):
            raise ActivityFailed(
                f"the timeline {timeline_path!r} does not follow user_id {user_id!r} (it follows "
                f"{', '.join(map(str, data.get('user_ids') or [])) or 'nobody'})"
            )
    elif user_id is None:
        raise ActivityFailed("timeline_path is required here: name the file watch_events wrote")
    else:
        path, data = timeline.find_timeline(user_id)
    if not data.get("connected"):
        raise ActivityFailed(
            f"the observer of {str(path)!r} never connected: it saw nothing, so it cannot vouch "
            f"for anything (errors: {'; '.join(map(str, data.get('errors') or [])) or 'none'})"
        )
    if not data.get("complete"):
        logging.getLogger("chaostoolkit").warning(
            "the watch_events timeline %s is not complete (still watching, or its run died): "
            "figures up to %s", path, data.get("ended_at"),
        )
    return data


def longest_not_on_queue(
    user_id: str,
    timeline_path: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """The longest unbroken time (seconds) ``user_id`` was not On Queue, as the external
    observer (``watch_events``, its own notification channel) saw it.

    Reads the timeline ``watch_events`` wrote (``timeline_path``, or the newest one of this
    ``chaos run`` that follows the user), so that the steady-state hypothesis after the method
    can judge the path, not only the end state. A stretch still open when the observation ended
    counts up to its end; a user not On Queue when the observer first read it counts from the
    observer's start. While the observer was blind (``blind_windows`` of the timeline) the last
    state it knew is assumed. Before any ``watch_events`` of this run (the hypothesis before the
    method) it returns 0.0, once; asked again with still no timeline it fails, and so it does
    when the timeline does not follow the user or its observer never connected (a
    ``watch_events`` that failed leaves a timeline saying so): silence is never a pass. Its
    companion from the desktop's own log is ``chaosgenesys.agent.probes.desktop_longest_off_queue``.

    ```json
    {"type": "probe", "name": "agent-never-off-queue-for-more-than-10-s",
     "tolerance": {"type": "range", "range": [0, 10]},
     "provider": {"type": "python", "module": "chaosgenesys.notifications.probes",
                  "func": "longest_not_on_queue", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    from chaosgenesys.arguments import require_id

    user = require_id("user_id", user_id)
    data = _timeline("longest_not_on_queue", user, timeline_path)
    if data is None:
        return 0.0
    value = (data.get("longest_not_on_queue_seconds") or {}).get(user, 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


def max_reconnect_latency(
    user_id: str = "",
    timeline_path: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """The longest time (milliseconds) the external observer's notification socket was down
    during its observation: from a drop to the socket open again, subscribed, with the users
    read again (a drop never recovered counts until the end), and the retried first
    connection's blind window when a fault held it off. 0.0 when it never had to reconnect.

    It is the notification service's reconnect latency as a client outside the agent desktop
    lives it (the same figure as ``watch_events``' ``blind_windows``), read from the timeline
    ``watch_events`` wrote: ``timeline_path``, or the newest one of this ``chaos run`` that
    follows ``user_id``; before any observation, and on failures, as ``longest_not_on_queue``.
    Its companion from the desktop's own log is
    ``chaosgenesys.agent.probes.desktop_max_reconnect_latency``.

    ```json
    {"type": "probe", "name": "notifications-came-back-within-5-s",
     "tolerance": {"type": "range", "range": [0, 5000]},
     "provider": {"type": "python", "module": "chaosgenesys.notifications.probes",
                  "func": "max_reconnect_latency", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    from chaosgenesys.arguments import require_id

    if not isinstance(user_id, str):
        raise ActivityFailed(f"user_id must be a user id or '', got {user_id!r}")
    user = require_id("user_id", user_id) if user_id else None
    if user is None and not timeline_path:
        raise ActivityFailed(
            "max_reconnect_latency needs user_id (to find this run's timeline) or timeline_path"
        )
    data = _timeline("max_reconnect_latency", user, timeline_path)
    if data is None:
        return 0.0
    windows = data.get("blind_windows") or []
    longest = max(
        (float(w.get("seconds") or 0.0) for w in windows if isinstance(w, dict)), default=0.0
    )
    return round(longest * 1000, 1)
