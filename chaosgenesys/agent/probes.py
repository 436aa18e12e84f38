"""What the synthetic agents measured: reconnects, latency, zombie time, consistency, logouts.

Reads the status file the agent process rewrites every 0.5 s (kept after it stops). Importing
this module does not import aiohttp.
"""

from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_id

__all__ = ["agent_summary"]


def agent_summary(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The summary of the synthetic agent of ``user_id`` (newest run that has it).

    ``reconnects``, ``reconnect_latency_ms`` (``min``, ``median``, ``max``, ``count``: from the
    disconnect to the socket open again and re-subscribed), ``zombie_seconds`` (time it believed
    its socket open while nothing arrived beyond the expected heartbeat), ``zombies_detected``,
    ``consistency_violations`` (local state pushed over newer server state),
    ``local_changes_discarded``, ``logged_out``, ``interactions_lost``, ``calls_answered``,
    ``wrapups_submitted``, ``token_refreshes``, ``api_calls``, ``api_failures``,
    ``api_latency_ms`` (``p50``, ``p99``, ``max``, ``count``: the agent's own REST calls and
    token requests as the desktop lives them, token and retry waits included), ``connected``,
    ``presence``, ``routing_status``, plus ``running`` (whether the agent process still runs)
    and ``age_seconds`` (how old the figures are).

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
    from chaosgenesys.agent.runtime import list_runs, read_json

    user = require_id("user_id", user_id)
    for record in list_runs():
        if user not in (record.get("users") or []):
            continue
        status = read_json(Path(str(record.get("status", ""))))
        agents = (status or {}).get("agents") or {}
        summary = agents.get(user)
        if not isinstance(summary, dict):
            continue
        running = bool((status or {}).get("running")) and process_alive(
            int(record.get("pid") or 0), str(record.get("start_time") or "")
        )
        result = dict(summary)
        result["running"] = running
        result["run_id"] = record.get("id")
        result["age_seconds"] = round(time.time() - float((status or {}).get("updated_at", 0)), 3)
        return result
    raise ActivityFailed(
        f"no synthetic agent has run for user_id {user!r}: start one with "
        "chaosgenesys.agent.actions.start_agents"
    )
