"""The synthetic agent processes of *this* run: started by this process, directly or not.

Another run's agents share the runtime directory (``chaosgenesys.agent.runtime``); the kill
switch and the protocol's figures judge only the run they belong to. No aiohttp.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["running_agents"]


def running_agents() -> list[tuple[str, dict[str, Any]]]:
    """``(run id, status file)`` of every synthetic agent process of this run that is running
    now: started by this process (directly or not)."""
    from chaosgenesys.agent.process import process_alive
    from chaosgenesys.agent.runtime import list_runs, read_json
    from chaosgenesys.faults.registry import ancestry

    me = os.getpid()
    running = []
    for run in list_runs():
        status = read_json(Path(str(run.get("status", ""))))
        if not status or not status.get("running"):
            continue
        pid = int(run.get("pid") or 0)
        if not process_alive(pid, str(run.get("start_time") or "")):
            continue
        if pid != me and me not in {parent for parent, _ in ancestry(pid)}:
            continue
        running.append((str(run.get("id")), status))
    return running
