"""What the synthetic agents measured: reconnects, latency, zombie time, consistency, logouts.

Reads the status file the agent process rewrites every 0.5 s (kept after it stops): the one of
this run's desktop of the user (``chaosgenesys.agent.this_run``), another run's only when this
run has none and ``scope`` allows it. Importing this module does not import aiohttp.
"""

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_id

__all__ = [
    "agent_summary",
    "desktop_longest_off_queue",
    "desktop_max_reconnect_latency",
]


logger = logging.getLogger("chaostoolkit")

#: ``(run id, user id)`` of the other runs' desktops a warning was logged for (once each).
_WARNED: set[tuple[str, str]] = set()


def _scope(scope: str) -> str:
    """``run``: only this run's desktop; ``all``: this run's, else another run's."""
    from chaosgenesys.faults.record_checks import check_scope

    return check_scope(scope, meaning="this run's desktop only; this run's, else another run's")


def agent_summary(
    user_id: str,
    scope: str = "all",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """The summary of this run's synthetic desktop of ``user_id``.

    Which desktop: the newest one of **this run** (started by ``start_agents`` in this process,
    or in a process it started, directly or not: the fault registry's rule, as ``stop_agents``
    decides what is this run's), running or stopped, even when another run (another
    ``chaos run`` on the machine) has a newer desktop of the same user. Only when this run has
    none for the user, ``scope`` ``all`` (the default) reads the newest desktop of another run
    (a desktop another process started, e.g. a harness that keeps desktops running for
    experiments that only read them), says so (``this_run`` false, ``run_id`` names it) and
    logs a warning once; ``scope`` ``run`` fails instead, naming the other run. No desktop at
    all: ``ActivityFailed``.

    ``reconnects``, ``reconnect_latency_ms`` (``min``, ``median``, ``max``, ``count``: from the
    disconnect to the socket open again and re-subscribed), ``zombie_seconds`` (time it believed
    its socket open while nothing arrived beyond the expected heartbeat), ``zombies_detected``,
    ``consistency_violations`` (local state pushed over newer server state),
    ``local_changes_discarded``, ``logged_out``, ``interactions_lost``, ``calls_answered``,
    ``wrapups_submitted``, ``token_refreshes``, ``api_calls``, ``api_failures``,
    ``api_latency_ms`` (``p50``, ``p99``, ``max``, ``count``: the agent's own REST calls and
    token requests as the desktop lives them, token and retry waits included), ``connected``,
    ``presence``, ``routing_status``, ``changes_failed`` / ``changes_retried`` (presence
    changes answered with a failure; retried until they landed), ``last_error``;
    ``longest_off_queue_seconds`` (the longest stretch the desktop was not On Queue in its own
    view: its presence not On Queue or no socket, counted from the first time it was On Queue,
    an ongoing stretch included), ``off_queue_periods``, ``off_queue_now``;
    ``token_expires_at`` (epoch seconds the desktop's own access token expires; never the
    token) and ``token_expires_in`` (seconds left, computed when read); ``reconnect_backoff``
    (the next reconnect delay it would use); plus ``running`` (whether the agent process
    still runs), ``age_seconds`` (how old the figures are), ``run_id`` (the agent run read)
    and ``this_run`` (whether it is this run's).

    ```json
    {"type": "probe", "name": "agent-reconnected-fast",
     "tolerance": {"type": "jsonpath",
                   "path": "$.reconnect_latency_ms[?(@.count = 0 or @.max < 5000)]"},
     "provider": {"type": "python", "module": "chaosgenesys.agent.probes",
                  "func": "agent_summary", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    import time

    from chaosgenesys.agent.process import process_alive
    from chaosgenesys.agent.this_run import desktop_of

    user = require_id("user_id", user_id)
    chosen = _scope(scope)
    found = desktop_of(user, others=chosen == "all")
    if found is None:
        other = desktop_of(user) if chosen == "run" else None
        if other is not None:
            raise ActivityFailed(
                f"scope 'run': this run has no synthetic agent for user_id {user!r} (another "
                f"run's desktop, run {other[0].get('id')!r}, has one: scope 'all' reads it); "
                "start one with chaosgenesys.agent.actions.start_agents"
            )
        raise ActivityFailed(
            f"no synthetic agent has run for user_id {user!r}"
            + (" in this run" if chosen == "run" else "")
            + ": start one with chaosgenesys.agent.actions.start_agents"
        )
    record, status, this_run = found
    run_id = str(record.get("id"))
    if not this_run and (run_id, user) not in _WARNED:
        _WARNED.add((run_id, user))
        logger.warning(
            "agent_summary: this run has no synthetic agent for user_id %r; reading another "
            "run's desktop (run %s)", user, run_id,
        )
    running = bool(status.get("running")) and process_alive(
        int(record.get("pid") or 0), str(record.get("start_time") or "")
    )
    result = dict(status["agents"][user])
    result["running"] = running
    result["run_id"] = run_id
    result["this_run"] = this_run
    age = max(0.0, time.time() - float(status.get("updated_at", 0)))
    result["age_seconds"] = round(age, 3)
    expires_at = result.get("token_expires_at")
    result["token_expires_in"] = None
    if isinstance(expires_at, int | float) and expires_at > 0:
        result["token_expires_in"] = round(max(0.0, expires_at - time.time()), 3)
    started_at = result.get("started_at")
    if "uptime_seconds" not in result and isinstance(started_at, int | float):
        # the status file keeps when the agent started; its age is computed now
        end = time.time() if running else float(status.get("updated_at", 0))
        result["uptime_seconds"] = round(max(0.0, end - started_at), 3)
    current = result.get("off_queue_current_seconds")
    if running and result.get("off_queue_now") and isinstance(current, int | float):
        # the stretch has gone on since the figures were written
        result["longest_off_queue_seconds"] = round(
            max(float(result.get("longest_off_queue_seconds") or 0.0), current + age), 3
        )
    return result


#: The longest window the path probes accept (seconds): a week.
MAX_WINDOW_SECONDS = 7 * 86400.0


def _window(window_seconds: float) -> float:
    from chaosgenesys.arguments import require_number

    return require_number("window_seconds", window_seconds, minimum=0.0,
                          maximum=MAX_WINDOW_SECONDS)


def desktop_longest_off_queue(
    user_id: str,
    window_seconds: float = 0.0,
    scope: str = "all",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """The longest time (seconds) the synthetic desktop of ``user_id`` was not On Queue, in the
    desktop's own view (presence not On Queue, or no socket), counted from the first time it
    was On Queue; an ongoing stretch counts up to now. ``window_seconds`` > 0 looks only at
    the last that many seconds (a stretch is clipped to the window; the latest 200 stretches
    are kept); 0 (the default) looks at the whole run. The desktop is the one
    ``agent_summary`` reads with the same ``scope``: this run's; another run's only when this
    run has none and ``scope`` is ``all`` (the default). A verdict on the path, not only on the
    end state: "back On Queue at the end" says nothing about the 40 s it was not. The
    platform's view of the same thing comes from ``chaosgenesys.notifications.probes``
    (``watch_events``).

    ```json
    {"type": "probe", "name": "desktop-never-off-queue-for-more-than-10-s",
     "tolerance": {"type": "range", "range": [0, 10]},
     "provider": {"type": "python", "module": "chaosgenesys.agent.probes",
                  "func": "desktop_longest_off_queue",
                  "arguments": {"user_id": "${agent_id}", "window_seconds": 120}}}
    ```
    """
    import time

    window = _window(window_seconds)
    summary = agent_summary(user_id, scope, configuration=configuration, secrets=secrets)
    if not window:
        return float(summary.get("longest_off_queue_seconds") or 0.0)
    now = time.time()
    low = now - window
    longest = 0.0
    for stretch in summary.get("off_queue_stretches") or []:
        if not isinstance(stretch, list) or len(stretch) != 2:
            continue
        start, end = stretch
        if not isinstance(start, int | float):
            continue
        if not isinstance(end, int | float):
            # open: ongoing while the desktop runs (a stopped desktop closed its stretches)
            end = now if summary.get("running") else float(start)
        longest = max(longest, min(float(end), now) - max(float(start), low))
    return round(max(0.0, longest), 3)


def desktop_max_reconnect_latency(
    user_id: str,
    window_seconds: float = 0.0,
    scope: str = "all",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> float:
    """The longest reconnect (milliseconds, from the disconnect to the socket open again and
    re-subscribed) of the synthetic desktop of ``user_id``, as the desktop measured it; 0.0
    when it never had to reconnect (check ``agent_summary``'s ``disconnects`` if that
    matters). ``window_seconds`` > 0 counts only reconnects that ended in the last that many
    seconds (the latest 200 are kept); 0 (the default) the whole run. The desktop is the one
    ``agent_summary`` reads with the same ``scope`` (this run's; another run's only when this
    run has none and ``scope`` is ``all``, the default). A desktop that is still reconnecting
    has not reported the latency yet: pair it with ``desktop_longest_off_queue``.

    ```json
    {"type": "probe", "name": "desktop-reconnected-within-10-s",
     "tolerance": {"type": "range", "range": [0, 10000]},
     "provider": {"type": "python", "module": "chaosgenesys.agent.probes",
                  "func": "desktop_max_reconnect_latency",
                  "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    import time

    window = _window(window_seconds)
    summary = agent_summary(user_id, scope, configuration=configuration, secrets=secrets)
    if window:
        low = time.time() - window
        latencies = [
            float(item[1]) for item in summary.get("recent_reconnects") or []
            if isinstance(item, list) and len(item) == 2
            and isinstance(item[0], int | float) and isinstance(item[1], int | float)
            and item[0] >= low
        ]
        return max(latencies, default=0.0)
    latency = summary.get("reconnect_latency_ms")
    value = latency.get("max") if isinstance(latency, dict) else None
    return float(value) if isinstance(value, int | float) else 0.0
