"""The synthetic agent processes of *this* run: started by this process, directly or not.

Another run's agents share the runtime directory (``chaosgenesys.agent.runtime``); the kill
switch and the protocol's figures judge only the run they belong to. No aiohttp.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["agent_runs", "running_agents"]


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


def agent_runs() -> list[tuple[str, dict[str, Any]]]:
    """``(run id, status file)`` of every synthetic agent process of this run, running or
    stopped: those this process started (their run record names it as owner) and those running
    under it. A desktop stopped in the method or the rollbacks still counts (its status file
    keeps its last figures)."""
    from chaosgenesys.agent.process import start_time
    from chaosgenesys.agent.runtime import list_runs, read_json

    me, started = os.getpid(), start_time(os.getpid())
    found = dict(running_agents())
    for run in list_runs():
        run_id = str(run.get("id"))
        if run_id in found:
            continue
        if int(run.get("owner_pid") or 0) != me:
            continue
        if str(run.get("owner_start_time") or "") != str(started or ""):
            continue
        status = read_json(Path(str(run.get("status", ""))))
        if status:
            found[run_id] = status
    return list(found.items())
