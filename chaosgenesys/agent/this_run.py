"""The synthetic agent processes of *this* run: started by this process, directly or not.

Another run's agents share the runtime directory (``chaosgenesys.agent.runtime``); ``stop_agents``,
``agent_summary``, the kill switch and the protocol's figures judge only the run they belong to.

Whose run an agent run is, is the fault registry's rule, not a second one: ``start_agents``
records the agent process as a fault of kind ``agents``, and the run is this process's when that
record belongs to this process's run (``FaultRecord.belongs_to(registry.run_owner())``: recorded
by this process or by a process it started, directly or not, each told by pid and start time).
The registry forgets the record once the agents are stopped, so ``run.json`` keeps a copy of it as
it was recorded (``fault_record``): a desktop stopped in the method or by its ``duration`` is
still this run's when the steady state reads it. A ``run.json`` written without that copy counts
while its record is in the registry (``registry.mine``). No aiohttp.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["KIND", "agent_runs", "desktop_of", "is_this_runs", "running_agents", "this_runs"]

#: The kind of the fault record of an agent run (``chaosgenesys.agent.process.start_run``).
KIND = "agents"


def this_runs(runs: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The agent runs (``run.json`` records; default every recorded run, newest first) that
    belong to this process's run, in the order given."""
    from chaosgenesys.agent.runtime import list_runs
    from chaosgenesys.faults import registry

    owner = registry.run_owner()
    live: set[str] | None = None
    chosen = []
    for run in list_runs() if runs is None else runs:
        mine = is_this_runs(run, owner)
        if mine is None:
            if live is None:  # read once, and only for a run.json without its record's copy
                live = {fault.id for fault in registry.mine(kind=KIND)}
            mine = bool(run.get("fault_id")) and run.get("fault_id") in live
        if mine:
            chosen.append(run)
    return chosen


def is_this_runs(run: dict[str, Any], owner: tuple[int, int | None]) -> bool | None:
    """Whether the agent run belongs to the run of process ``owner`` (``(pid, start)``), as
    the copy of its fault record in ``run.json`` says; ``None`` when it has no readable copy
    (then only the registry can tell: :func:`this_runs`)."""
    from chaosgenesys.faults.record import FaultRecord

    copy = run.get("fault_record")
    if not isinstance(copy, dict):
        return None
    try:
        record = FaultRecord.from_dict(copy)
    except ValueError:
        return None
    return record.belongs_to(owner)


def running_agents() -> list[tuple[str, dict[str, Any]]]:
    """``(run id, status file)`` of every synthetic agent process of this run that is running
    now."""
    from chaosgenesys.agent.process import process_alive
    from chaosgenesys.agent.runtime import read_json

    running = []
    for run in this_runs():
        status = read_json(Path(str(run.get("status", ""))))
        if not status or not status.get("running"):
            continue
        if not process_alive(int(run.get("pid") or 0), str(run.get("start_time") or "")):
            continue
        running.append((str(run.get("id")), status))
    return running


def agent_runs() -> list[tuple[str, dict[str, Any]]]:
    """``(run id, status file)`` of every synthetic agent process of this run, running or
    stopped: a desktop stopped in the method or the rollbacks still counts (its status file
    keeps its last figures)."""
    from chaosgenesys.agent.runtime import read_json

    found = []
    for run in this_runs():
        status = read_json(Path(str(run.get("status", ""))))
        if status:
            found.append((str(run.get("id")), status))
    return found


def desktop_of(
    user_id: str, others: bool = True
) -> tuple[dict[str, Any], dict[str, Any], bool] | None:
    """The synthetic desktop of ``user_id`` to read: ``(run record, status file, this run's)``.

    The newest of this run's runs that has the user, whatever runs elsewhere; only when this run
    has none and ``others`` is true, the newest other run's that has it; ``None`` when there is
    none to read."""
    from chaosgenesys.agent.runtime import list_runs

    runs = [run for run in list_runs() if user_id in (run.get("users") or [])]
    ours = this_runs(runs)
    own_ids = {id(run) for run in ours}
    candidates = [(run, True) for run in ours]
    if others:
        candidates += [(run, False) for run in runs if id(run) not in own_ids]
    for run, mine in candidates:
        status = _status_with(run, user_id)
        if status is not None:
            return run, status, mine
    return None


def _status_with(run: dict[str, Any], user_id: str) -> dict[str, Any] | None:
    from chaosgenesys.agent.runtime import read_json

    status = read_json(Path(str(run.get("status", ""))))
    agents = (status or {}).get("agents") or {}
    return status if isinstance(agents.get(user_id), dict) else None

