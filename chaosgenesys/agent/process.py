"""Start and stop the background ``chaosgenesys agent`` process of an experiment. No aiohttp.

:func:`start_run` spawns ``python -m chaosgenesys.agent`` (inside ``ip netns exec NS`` when a
network namespace is named) in its own session, credentials in its environment only, and
records it: ``run.json`` in its run folder (see :mod:`chaosgenesys.agent.runtime`) and, when the
fault registry (``chaosgenesys.faults.registry``) is installed, a fault record of kind
``agents`` whose reverter (:func:`revert`) stops the process, so ``chaosgenesys cleanup`` and
the guardian stop forgotten agents too. The process also stops by itself when its owner (the
process that started it) is gone, and ``duration`` seconds after every agent is ready when
one is given. Until then the record's deadline leaves the agents :data:`READY_TIMEOUT` seconds to
get ready; :func:`follow_deadline` then moves it to the process's own deadline.

Run folders are pruned by :func:`prune_runs` each time a run starts: a folder goes only when
nothing uses it any more (its agent process and its owner are both gone) and it is either older
than ``CHAOSGENESYS_AGENT_RUNS_MAX_AGE`` seconds (default a week) or not among the newest
``CHAOSGENESYS_AGENT_RUNS_KEEP`` such folders (default 20). A live run is never touched.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from chaosgenesys import processes
from chaosgenesys.agent.runtime import agents_dir, list_runs, read_json, write_json_atomic

__all__ = [
    "READY_TIMEOUT", "follow_deadline", "process_alive", "prune_runs", "revert", "start_run",
    "start_time", "stop_run", "wait_ready",
]

#: How long ``start_agents`` waits for every agent to be ready (s); a recorded run's deadline
#: leaves it that long before its ``duration`` starts.
READY_TIMEOUT = 30.0

logger = logging.getLogger("chaostoolkit")

ENV_CLIENT_ID = "GENESYSCLOUD_OAUTHCLIENT_ID"
ENV_CLIENT_SECRET = "GENESYSCLOUD_OAUTHCLIENT_SECRET"
_STOP_TIMEOUT = 10.0

#: Environment: how many finished run folders are kept whatever their age (default 20).
ENV_RUNS_KEEP = "CHAOSGENESYS_AGENT_RUNS_KEEP"
#: Environment: finished run folders older than this many seconds go (default a week).
ENV_RUNS_MAX_AGE = "CHAOSGENESYS_AGENT_RUNS_MAX_AGE"
RUNS_KEEP = 20
RUNS_MAX_AGE = 7 * 24 * 3600.0
#: A folder younger than this is never pruned (it may be being written: no run.json yet).
RUNS_MIN_AGE = 60.0


def start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat as run records keep it (a string; empty when there is no
    such process): tells a reused pid from the process we started
    (``chaosgenesys.processes``)."""
    found = processes.start_time(pid)
    return "" if found is None else str(found)


def process_alive(pid: int, started: str = "") -> bool:
    """Whether ``pid`` runs (not a zombie) and (when given) ``started`` is its
    :func:`start_time`."""
    if started and not started.isdigit():
        return False  # names no process
    return processes.alive(pid, int(started) if started else None)


def _registry() -> Any:
    try:
        return importlib.import_module("chaosgenesys.faults.registry")
    except ImportError:
        return None


def start_run(
    *,
    user_ids: list[str],
    api_url: str,
    login_url: str,
    client_id: str,
    client_secret: str,
    mode: str,
    proxy: str = "",
    ca_file: str = "",
    verify_tls: bool = True,
    timeout: float = 10.0,
    duration: float = 0.0,
    log_path: str = "",
    netns: str = "",
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Spawn the agent process and record it; returns the run record.

    Finished run folders of earlier runs are pruned first (:func:`prune_runs`)."""
    try:
        prune_runs()
    except Exception as error:  # pruning never stops a run from starting
        logger.warning("could not prune old agent run folders: %s", error)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    folder = agents_dir() / run_id
    folder.mkdir(parents=True)
    status = folder / "status.json"
    log = Path(log_path).resolve() if log_path else folder / "events.jsonl"
    command = [sys.executable, "-m", "chaosgenesys.agent", "--mode", mode,
               "--api-url", api_url, "--login-url", login_url, "--timeout", str(timeout),
               "--log", str(log), "--status-file", str(status),
               "--owner-pid", str(os.getpid())]
    for user in user_ids:
        command += ["--user", user]
    if proxy:
        command += ["--proxy", proxy]
    if ca_file:
        command += ["--ca-file", ca_file]
    if not verify_tls:
        command.append("--insecure")
    if duration:
        command += ["--duration", str(duration), "--ready-allowance", str(READY_TIMEOUT)]
    for name, value in (options or {}).items():
        command += ["--option", f"{name}={value if isinstance(value, str) else _json(value)}"]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYSCLOUD_")}
    env[ENV_CLIENT_ID] = client_id
    env[ENV_CLIENT_SECRET] = client_secret
    record: dict[str, Any] = {
        "id": run_id,
        "users": user_ids,
        "mode": mode,
        "netns": netns,
        "proxy": proxy,
        "log": str(log),
        "status": str(status),
        "stderr": str(folder / "stderr.log"),
        "created_at": time.time(),
        "owner_pid": os.getpid(),
        "owner_start_time": start_time(os.getpid()),
        "pid": 0,
        "start_time": "",
        "fault_id": "",
        # where the agents' Prometheus endpoint is (the metrics_port option), "" when off
        "metrics_url": _metrics_url(options),
    }
    registry = _registry()
    fault = None
    if registry is not None:
        fault = registry.record(
            kind="agents",
            description=f"synthetic agents ({mode}) for {len(user_ids)} user(s)",
            reverter="chaosgenesys.agent.process:revert",
            spec={"dir": str(folder)},
            # the agents count their duration from when they are ready: until then the record
            # leaves them the time to get ready (follow_deadline moves it once they are)
            duration=duration + READY_TIMEOUT if duration else None,
        )
        record["fault_id"] = fault.id
        # the record as recorded: whose run this is (chaosgenesys.agent.this_run) once the
        # registry has forgotten it (the agents stopped)
        record["fault_record"] = fault.to_dict()
    write_json_atomic(folder / "run.json", record)
    undone = (
        registry.undone_on_failure(fault.id)
        if registry is not None and fault is not None
        else contextlib.nullcontext()
    )
    with undone, open(folder / "stderr.log", "wb") as stderr:
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, start_new_session=True, cwd=str(folder),
        )
    record["pid"] = process.pid
    record["start_time"] = start_time(process.pid)
    write_json_atomic(folder / "run.json", record)
    if fault is not None:
        with contextlib.suppress(Exception):
            registry.update(fault.id, spec={"dir": str(folder), "pid": process.pid,
                                            "start_time": record["start_time"]})
    record["dir"] = str(folder)
    # keep the Popen object from warning at exit: the child is detached on purpose
    process.returncode = 0
    return record


def _setting(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value != value or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {text!r}")
    return value


def _last_activity(folder: Path, record: dict[str, Any] | None) -> float:
    """When the run last showed life: its record's creation, or its files' last writes."""
    moments = [float((record or {}).get("created_at") or 0)]
    for path in (folder, folder / "run.json", folder / "status.json"):
        with contextlib.suppress(OSError):
            moments.append(path.lstat().st_mtime)
    return max(moments)


def _in_use(record: dict[str, Any] | None) -> bool:
    """Whether the run's agent process or its owner (the process that started it) runs."""
    if record is None:
        return False
    pid = int(record.get("pid") or 0)
    owner = int(record.get("owner_pid") or 0)
    return process_alive(pid, str(record.get("start_time") or "")) or process_alive(
        owner, str(record.get("owner_start_time") or "")
    )


def prune_runs(
    keep: int | None = None, max_age: float | None = None, *, now: float | None = None
) -> list[str]:
    """Remove the run folders nothing uses any more; returns the names removed.

    A folder is removed when its agent process and its owner are both gone (a pid checked with
    its start time, so a reused pid is not mistaken for them), it was last written more than
    ``RUNS_MIN_AGE`` seconds ago, and it is older than ``max_age`` seconds or not among the
    newest ``keep`` such folders. A folder whose ``run.json`` is missing or unreadable counts as
    unused. Defaults: ``CHAOSGENESYS_AGENT_RUNS_KEEP`` (20) and
    ``CHAOSGENESYS_AGENT_RUNS_MAX_AGE`` (604800 s). Only directories directly under
    ``<runtime dir>/agents`` are considered, never a symbolic link.
    """
    keep = int(_setting(ENV_RUNS_KEEP, RUNS_KEEP)) if keep is None else keep
    max_age = _setting(ENV_RUNS_MAX_AGE, RUNS_MAX_AGE) if max_age is None else max_age
    if keep < 0 or max_age < 0:
        raise ValueError(f"keep and max_age must be >= 0, got {keep!r} and {max_age!r}")
    moment = time.time() if now is None else now
    finished: list[tuple[float, Path]] = []
    for folder in agents_dir().iterdir():
        if folder.is_symlink() or not folder.is_dir():
            continue
        record = read_json(folder / "run.json")
        if _in_use(record):
            continue
        last = _last_activity(folder, record)
        if moment - last < RUNS_MIN_AGE:
            continue
        finished.append((last, folder))
    finished.sort(key=lambda item: item[0], reverse=True)
    removed: list[str] = []
    for rank, (last, folder) in enumerate(finished):
        if rank < keep and moment - last <= max_age:
            continue
        try:
            shutil.rmtree(folder)
        except OSError as error:
            logger.warning("could not remove the agent run folder %s: %s", folder, error)
            continue
        removed.append(folder.name)
    if removed:
        logger.debug("pruned %d agent run folder(s): %s", len(removed), ", ".join(removed))
    return removed


def _metrics_url(options: dict[str, Any] | None) -> str:
    port = (options or {}).get("metrics_port")
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port <= 65535:
        return f"http://127.0.0.1:{port}/metrics"
    return ""


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def follow_deadline(record: dict[str, Any], status: dict[str, Any] | None) -> None:
    """Move the run's fault record's deadline to the one its process reports (``deadline`` in
    its status file: ``duration`` after every agent was ready), so the guardian stops the
    agents when they stop themselves, not before. No record or no deadline: nothing to do."""
    deadline = (status or {}).get("deadline")
    registry = _registry()
    if (
        registry is None
        or not record.get("fault_id")
        or isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
    ):
        return
    registry.update(record["fault_id"], deadline=float(deadline))


def wait_ready(record: dict[str, Any], timeout: float) -> tuple[bool, dict[str, Any] | None]:
    """Wait until every agent of the run reports ``ready`` (or the process dies)."""
    status_path = Path(record["status"])
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = read_json(status_path)
        agents = (status or {}).get("agents") or {}
        if agents and all(a.get("ready") for a in agents.values()) and len(agents) >= len(
            record["users"]
        ):
            return True, status
        if not process_alive(int(record.get("pid") or 0), str(record.get("start_time") or "")):
            return False, status
        time.sleep(0.1)
    return False, status


def stop_run(record: dict[str, Any], timeout: float = _STOP_TIMEOUT) -> bool:
    """SIGTERM the run's process, SIGKILL after ``timeout``; True if it was running."""
    pid = int(record.get("pid") or 0)
    started = str(record.get("start_time") or "")
    if not process_alive(pid, started):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, started):
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_all(run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """Stop every recorded run that still runs (or only ``run_ids``); forget their faults."""
    stopped = []
    registry = _registry()
    for record in list_runs():
        if run_ids is not None and record.get("id") not in run_ids:
            continue
        was_running = stop_run(record)
        fault_id = record.get("fault_id")
        if fault_id and registry is not None:
            with contextlib.suppress(Exception):
                registry.revert(fault_id)
        if was_running:
            stopped.append(record)
    return stopped


def revert(fault: Any) -> None:
    """Fault-registry reverter: stop the run recorded in ``fault.spec["dir"]`` (idempotent)."""
    spec = getattr(fault, "spec", None) or {}
    folder = spec.get("dir")
    if not folder:
        return
    record = read_json(Path(folder) / "run.json")
    if record is not None:
        stop_run(record)


__all__ += ["stop_all"]
