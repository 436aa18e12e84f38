"""A lasting browser fault: its registry record, its holder process started and waited for
until the fault is in force, and its reverter, which stops that holder.

The holder is ``python -m chaosgenesys.browser.fault_holder`` (detached, in a session of its
own); the records are of kind ``browser-fault``. The holder speaks CDP over one WebSocket
(:mod:`chaosgenesys.browser.cdp`), without Playwright.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.redaction import shown_url

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

__all__ = [
    "COUNTS_FILE", "KIND", "REVERTER", "START_TIMEOUT", "STOP_TIMEOUT", "hits", "hold", "revert",
    "stop_and_count",
]

KIND = "browser-fault"
#: The records name the reverter where the activities live (records written before this module
#: existed name it too): :mod:`chaosgenesys.browser.faults` re-exports :func:`revert`.
REVERTER = "chaosgenesys.browser.faults:revert"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
#: What the holder has hit so far, in its state folder: ``{"matched": n, "passed": n}``.
COUNTS_FILE = "counts.json"


def _registry() -> Any:
    from chaosgenesys.faults import registry

    return registry


def _holder_alive(spec: dict[str, Any]) -> bool:
    pid = spec.get("pid")
    if not isinstance(pid, int):
        return False
    alive: bool = _registry().process_alive(pid, spec.get("pid_start"))
    return alive


def _log_tail(state_dir: str, lines: int = 6) -> str:
    with contextlib.suppress(OSError):
        text = (Path(state_dir) / "holder.log").read_text(errors="replace")
        return " | ".join([line for line in text.splitlines() if line.strip()][-lines:])[-1200:]
    return ""


def hold(
    fault: str,
    description: str,
    url_pattern: str,
    params: dict[str, Any],
    duration: float,
    devtools_url: str,
    page_url_pattern: str,
    ws_url: str,
) -> dict[str, Any]:
    """Record the fault, start its holder, wait until it is in force; the activity's answer."""
    registry = _registry()
    base = Path(registry.registry_dir()) / "browser-faults"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir = tempfile.mkdtemp(prefix=f"{fault}-", dir=base)
    ready_file = os.path.join(state_dir, "ready.json")
    spec: dict[str, Any] = {
        "fault": fault,
        "url_pattern": url_pattern,
        **params,
        "devtools_url": shown_url(devtools_url),
        "page_url_pattern": page_url_pattern,
        "state_dir": state_dir,
        "pid": None,
        "pid_start": None,
    }
    # Until the holder says the fault is in force, the record's deadline leaves it the time to
    # start; then it becomes that moment plus ``duration`` (the holder's own deadline).
    record = registry.record(
        kind=KIND,
        description=description,
        reverter=REVERTER,
        spec=spec,
        duration=duration + START_TIMEOUT,
    )
    with registry.undone_on_failure(record.id):
        config = {
            "fault": fault,
            "fault_id": record.id,
            "url_pattern": url_pattern,
            "params": params,
            "ws_url": ws_url,
            "page_url_pattern": page_url_pattern,
            "deadline": record.deadline,
            "duration": duration,
            "ready_file": ready_file,
            "counts_file": os.path.join(state_dir, COUNTS_FILE),
        }
        from chaosgenesys.faults.holders import start_holder

        with open(os.path.join(state_dir, "holder.log"), "wb") as log:
            process, spec = start_holder(
                record.id, spec, "chaosgenesys.browser.fault_holder", log, config
            )
        ready = _wait_ready(process, ready_file, state_dir)
        if isinstance(ready.get("deadline"), int | float):
            # the holder counts the window from when the fault was in force: so does the record
            registry.update(record.id, deadline=float(ready["deadline"]))
    # the holder is detached on purpose: keep the Popen object from warning about it
    process.returncode = 0
    answer: dict[str, Any] = {"id": record.id, "kind": fault, "url_pattern": url_pattern}
    answer.update({k: v for k, v in params.items() if k != "conditions"})
    answer.update({"duration": duration, "page": ready.get("page", ""), "pid": process.pid})
    if "reaches_libraries" in ready:
        answer["reaches_libraries"] = bool(ready["reaches_libraries"])
    if isinstance(ready.get("workers"), int):
        answer["workers"] = int(ready["workers"])
    if isinstance(ready.get("closed"), list):
        answer["closed"] = [str(url) for url in ready["closed"]]
    return answer


def hits(spec: dict[str, Any]) -> dict[str, int] | None:
    """What the fault of ``spec`` (a record's) has hit so far, as its holder last wrote it:
    ``{"matched": n, "passed": n}``; None for an ``emulate`` fault (it slows everything, there
    is nothing to count), or when nothing was written (yet) or it is unreadable."""
    state_dir = spec.get("state_dir")
    if spec.get("fault") == "emulate" or not isinstance(state_dir, str):
        return None
    try:
        data = json.loads((Path(state_dir) / COUNTS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    matched, passed = _count(data.get("matched")), _count(data.get("passed"))
    if matched is None or passed is None:
        return None
    return {"matched": matched, "passed": passed}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stop_and_count(spec: dict[str, Any]) -> dict[str, int] | None:
    """Stop the holder of the fault of ``spec`` (it undoes its setting and writes its last
    figures, then exits) and return those figures (:func:`hits`). The record stays: revert it
    after, as ever."""
    _stop_holder(spec)
    return hits(spec)


def _wait_ready(process: subprocess.Popen[bytes], ready_file: str, state_dir: str) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            ready = json.loads(Path(ready_file).read_text())
            if ready.get("ok"):
                return ready
            raise ActivityFailed(f"the browser fault did not start: {ready.get('error')}")
        if process.poll() is not None:
            tail = _log_tail(state_dir)
            raise ActivityFailed(
                f"the browser fault holder exited ({process.returncode}) before the fault was "
                f"in force{': ' + tail if tail else ''}"
            )
        time.sleep(0.02)
    raise ActivityFailed(f"the browser fault was not in force after {START_TIMEOUT:g} s")


def revert(fault: FaultRecord) -> None:
    """Fault-registry reverter: stop the holder (SIGTERM: it undoes the setting and detaches;
    SIGKILL after :data:`STOP_TIMEOUT` s: the setting ends with its DevTools session), then
    remove its state folder. Idempotent; works in any process from the record alone."""
    _stop_holder(fault.spec)
    state_dir = fault.spec.get("state_dir")
    base = Path(_registry().registry_dir()) / "browser-faults"
    if isinstance(state_dir, str) and Path(state_dir).parent == base:
        shutil.rmtree(state_dir, ignore_errors=True)


def _stop_holder(spec: dict[str, Any]) -> None:
    if not _holder_alive(spec):
        return
    pid = int(spec["pid"])
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        _reap(pid)
        if not _holder_alive(spec):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
