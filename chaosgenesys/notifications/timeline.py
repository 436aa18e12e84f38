"""Where ``watch_events`` writes its timeline, and reading it back for the path probes.

``watch_events`` usually runs as a **background** probe during the method; a steady-state probe
after the method cannot see its return value. So the observer also writes its figures to a JSON
file, rewritten every second while it watches and a last time when it stops, and the probes of
``chaosgenesys.notifications.probes`` (``longest_not_on_queue``, ``max_reconnect_latency``) read
that file. Without a ``timeline_path`` the file is
``<runtime dir>/observer/watch-<pid>-<time>-<random>.json`` and a probe of the **same process**
(the same ``chaos run``) finds the newest one that follows the user; another run's timelines
are never read. The file is the ``watch_events`` result plus::

    {"format": "chaosgenesys.watch_events.timeline/1", "complete": true|false,
     "connected": true|false, "updated_at": <epoch seconds>,
     "writer": {"pid": 1234, "start_time": "<field 22 of /proc/pid/stat>"}, ...}

No token or secret is in it. Timelines whose writer is gone are removed after a week (each time
an observer starts).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.agent.process import start_time

__all__ = ["FORMAT", "TimelineWriter", "find_timeline", "prune_timelines", "read_timeline"]

FORMAT = "chaosgenesys.watch_events.timeline/1"
#: Timelines whose writer is gone are removed once older than this (seconds).
MAX_AGE = 7 * 24 * 3600.0


def _writer() -> dict[str, Any]:
    return {"pid": os.getpid(), "start_time": start_time(os.getpid())}


def timelines_dir() -> Path:
    """``<runtime dir>/observer`` (created if needed)."""
    from chaosgenesys.agent.runtime import runtime_dir

    path = runtime_dir() / "observer"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_path() -> Path:
    """A new timeline file of this process under :func:`timelines_dir`."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return timelines_dir() / f"watch-{os.getpid()}-{stamp}-{uuid.uuid4().hex[:8]}.json"


def checked_path(name: str, value: Any) -> Path:
    """``value`` as a timeline path to write: a file whose folder exists (``ActivityFailed``
    naming ``name`` otherwise)."""
    if not isinstance(value, str) or not value.strip():
        raise ActivityFailed(f"{name} must be a file path, got {value!r}")
    path = Path(value).expanduser().absolute()
    if path.is_dir():
        raise ActivityFailed(f"{name} {value!r} is a directory: name a file")
    if not path.parent.is_dir():
        raise ActivityFailed(f"{name} {value!r}: the folder {str(path.parent)!r} does not exist")
    return path


class TimelineWriter:
    """Writes the observer's figures to ``path`` atomically (a temporary file, then rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = _writer()

    def __call__(self, figures: dict[str, Any]) -> None:
        data = {"format": FORMAT, "writer": self._writer, "updated_at": time.time(), **figures}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def read_timeline(path: str | Path, name: str = "timeline_path") -> dict[str, Any]:
    """The timeline in ``path`` (``ActivityFailed`` naming ``name`` when missing or not one)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActivityFailed(
            f"{name} {str(path)!r} does not exist: did watch_events run with "
            f"timeline_path={str(path)!r}?"
        ) from None
    except (OSError, ValueError) as error:
        raise ActivityFailed(f"{name} {str(path)!r} cannot be read: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ActivityFailed(f"{name} {str(path)!r} is not a watch_events timeline ({FORMAT})")
    return data


def own_timelines() -> list[tuple[Path, dict[str, Any]]]:
    """Every timeline written by this process (pid and start time), oldest first."""
    me = _writer()
    found: list[tuple[str, Path, dict[str, Any]]] = []
    for path in timelines_dir().glob(f"watch-{me['pid']}-*.json"):
        with contextlib.suppress(ActivityFailed):
            data = read_timeline(path)
            if data.get("writer") == me:
                found.append((str(data.get("started_at") or ""), path, data))
    found.sort(key=lambda item: item[0])
    return [(path, data) for _, path, data in found]


def find_timeline(user_id: str) -> tuple[Path, dict[str, Any]]:
    """The newest timeline written by this process that follows ``user_id``."""
    found = [
        (path, data) for path, data in own_timelines() if user_id in (data.get("user_ids") or [])
    ]
    if not found:
        raise ActivityFailed(
            f"no watch_events timeline of this run follows user_id {user_id!r}: run "
            "chaosgenesys.notifications.probes.watch_events (as a background probe of the "
            "method) for that user before this probe, or give the timeline_path it wrote"
        )
    return found[-1]


def write_failure(path: Path, user_ids: list[str], error: Exception) -> None:
    """Leave a timeline saying the observation failed (so no probe takes silence for calm)."""
    try:
        data = read_timeline(path)
    except ActivityFailed:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        data = {"started_at": now, "ended_at": now, "user_ids": user_ids, "errors": []}
    data.pop("format", None)
    data.pop("writer", None)
    data.pop("updated_at", None)
    data.update(complete=True, connected=False, failed=str(error))
    data["errors"] = [*(data.get("errors") or []), str(error)]
    TimelineWriter(path)(data)


def prune_timelines(max_age: float = MAX_AGE, now: float | None = None) -> list[str]:
    """Remove timelines whose writer is gone and that were last written over ``max_age`` s ago."""
    moment = time.time() if now is None else now
    removed: list[str] = []
    for path in timelines_dir().glob("watch-*.json"):
        try:
            pid = int(path.name.split("-")[1])
            age = moment - path.lstat().st_mtime
        except (ValueError, IndexError, OSError):
            continue
        if age <= max_age or path.is_symlink():
            continue
        with contextlib.suppress(ActivityFailed):
            writer = read_timeline(path).get("writer") or {}
            running = start_time(pid)
            if running and writer.get("pid") == pid and writer.get("start_time") == running:
                continue  # its writer still runs
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(path.name)
    return removed
