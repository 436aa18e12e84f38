"""Where browser observers live on disk, which belong to this run, and stopping them. No Playwright.

Each observer started by :func:`chaosgenesys.browser.actions.start_observer` has a folder
``<runtime dir>/browser/<observer id>/`` holding ``observer.json`` (what started it: pid and start
time, owner, arguments, fault id), ``status.json`` (rewritten atomically by the observer:
attached, page URL, last UI values, event counts, why it ended), ``events.jsonl`` (the event
log, :mod:`chaosgenesys.browser.summary` reads it) and ``stderr.log``. The folder stays after the
observer stops, so the probes answer after it is gone.

The observer is in the fault registry (kind :data:`KIND`) from before it starts until it is
stopped; :func:`revert` (the reverter) stops the observer process and any browser it launched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from chaosgenesys import processes
from chaosgenesys.agent.process import process_alive, start_time
from chaosgenesys.agent.runtime import observers_dir, read_json, write_json_atomic
from chaosgenesys.browser.summary import SILENCE_S, read_events, summarize_events

__all__ = [
    "KIND",
    "list_observers",
    "observer_dir",
    "observers_dir",
    "pick_observer",
    "process_alive",
    "revert",
    "run_observers",
    "start_time",
    "stop_process",
    "summary_of",
    "write_json_atomic",
]

#: The fault registry kind of an observer (the browser faults find the run's observer by it).
KIND = "browser-observer"
_STOP_TIMEOUT = 5.0


def observer_dir(observer_id: str) -> Path:
    """The folder of observer ``observer_id``."""
    return observers_dir() / observer_id


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int, started: str, timeout: float = _STOP_TIMEOUT) -> bool:
    """SIGTERM ``pid`` (if it is the process that started at ``started``), SIGKILL after
    ``timeout``; True if it was running."""
    if not process_alive(pid, started):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not process_alive(pid, started):
            return True
        time.sleep(0.05)
    if process_alive(pid, started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not process_alive(pid, started):
            break
        time.sleep(0.02)
    return True


def _group_members(group: int, not_before: str) -> list[int]:
    """Processes of process group ``group`` that started no earlier than ``not_before``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        found = processes.stat(int(entry.name))  # its group and start time: one read
        if found is None or found.pgrp != group:
            continue
        if not not_before or found.start >= int(not_before):
            members.append(int(entry.name))
    return members


def _stop_browser(pid: int, started: str) -> None:
    """Stop a browser the observer launched (in a session of its own, so its group id is its
    pid) and what is left of its group (renderers, zygote), even when it is gone already."""
    if pid <= 1 or not started:
        return
    stop_process(pid, started)
    if pid == os.getpgrp():
        return
    for _ in range(50):
        if not _group_members(pid, started):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(0.02)


def revert(fault: Any) -> None:
    """Fault-registry reverter: stop the observer of ``fault.spec`` and the browser it launched
    (each checked by pid and start time; idempotent)."""
    spec = getattr(fault, "spec", None) or {}
    pid = int(spec.get("pid") or 0)
    stop_process(pid, str(spec.get("start_time") or ""))
    folder = spec.get("dir")
    status = read_json(Path(folder) / "status.json") if folder else None
    browser_pid = int(spec.get("browser_pid") or (status or {}).get("browser_pid") or 0)
    browser_start = str(
        spec.get("browser_start_time") or (status or {}).get("browser_start_time") or ""
    )
    _stop_browser(browser_pid, browser_start)
    profile = str(spec.get("browser_profile") or (status or {}).get("browser_profile") or "")
    if profile and Path(profile).name.startswith("chaosgenesys-observer-"):
        import shutil

        shutil.rmtree(profile, ignore_errors=True)


def list_observers() -> list[dict[str, Any]]:
    """Every observer's ``observer.json`` (plus ``dir``), newest first."""
    found: list[dict[str, Any]] = []
    try:
        folders = list(observers_dir().iterdir())
    except OSError:
        return []
    for folder in folders:
        record = read_json(folder / "observer.json")
        if record is not None and not folder.is_symlink():
            record["dir"] = str(folder)
            found.append(record)
    found.sort(key=lambda r: float(r.get("created_at") or 0), reverse=True)
    return found


def _same(pid: int, start: str, other: tuple[int, int | None]) -> bool:
    return pid == other[0] and (not start or other[1] is None or start == str(other[1]))


def run_observers() -> list[dict[str, Any]]:
    """The observers of this process's run, newest first: started by this process or by a
    process it started, or still in the registry as this run's (``registry.mine``)."""
    from chaosgenesys.faults import registry

    me = registry.run_owner()
    own_faults = {fault.id for fault in registry.mine(kind=KIND)}
    chosen = []
    for record in list_observers():
        owners = [(int(record.get("owner_pid") or 0), str(record.get("owner_start") or ""))]
        owners += [(int(p), str(s or "")) for p, s in record.get("owner_ancestors") or []]
        if record.get("fault_id") in own_faults or any(_same(p, s, me) for p, s in owners):
            chosen.append(record)
    return chosen


def pick_observer(observer_id: str) -> dict[str, Any]:
    """The observer named ``observer_id``, or the newest of this run when it is empty;
    ``ActivityFailed`` naming the argument when there is none."""
    from chaoslib.exceptions import ActivityFailed

    if not isinstance(observer_id, str):
        raise ActivityFailed(f"observer_id must be a string, got {observer_id!r}")
    if observer_id:
        if "/" in observer_id or observer_id.startswith("."):
            raise ActivityFailed(f"observer_id must be an observer's id, got {observer_id!r}")
        record = read_json(observer_dir(observer_id) / "observer.json")
        if record is None:
            raise ActivityFailed(f"observer_id {observer_id!r}: no such browser observer")
        record["dir"] = str(observer_dir(observer_id))
        return record
    mine = run_observers()
    if not mine:
        raise ActivityFailed(
            "no browser observer has run in this run: start one with "
            "chaosgenesys.browser.actions.start_observer, or pass observer_id"
        )
    return mine[0]


def summary_of(
    record: dict[str, Any],
    silence_s: float = SILENCE_S,
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The figures of one observer (its ``observer.json`` record with ``dir``); ``events``: its
    ``events.jsonl`` when the caller has read it already."""
    folder = Path(str(record["dir"]))
    status = read_json(folder / "status.json") or {}
    running = process_alive(int(record.get("pid") or 0), str(record.get("start_time") or ""))
    if events is None:
        events = read_events(folder / "events.jsonl")
    ended_at = max((float(e.get("ts", 0.0)) for e in events), default=0.0)
    summary = summarize_events(events, silence_s, now=time.time() if running else ended_at)
    summary.update(
        observer_id=record.get("id"),
        running=running,
        attached=bool(status.get("attached")),
        page_url=status.get("page_url") or "",
        ended=status.get("ended") or ("" if running else "gone"),
        browser_gone=any(e.get("event") == "browser_gone" for e in events),
        events=len(events),
        # a browser the observer launched: the session tokens revoked when it stopped
        tokens_revoked=status.get("tokens_revoked"),
        tokens_still_working=status.get("tokens_still_working"),
    )
    return summary
