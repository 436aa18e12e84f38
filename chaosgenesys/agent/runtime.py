"""Where agent runs live on disk, and reading what they report. No aiohttp.

Each background run started by :func:`chaosgenesys.agent.actions.start_agents` has a folder
``<runtime dir>/agents/<run id>/`` with ``run.json`` (pid, users, paths), ``status.json`` (the
agents' summaries, rewritten every 0.5 s by the agent process, kept after it stops),
``events.jsonl`` (unless another log path was given) and ``stderr.log``.

Each browser observer (``chaosgenesys.browser``) has a folder ``<runtime dir>/browser/<id>/``.

The runtime dir is the fault registry's (``chaosgenesys.faults.location``):
``CHAOSGENESYS_RUNTIME_DIR``, else ``/run/chaosgenesys`` when writable, else
``$XDG_RUNTIME_DIR/chaosgenesys``, else ``/tmp/chaosgenesys-<uid>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "agents_dir",
    "list_runs",
    "observers_dir",
    "read_json",
    "runtime_dir",
    "write_json_atomic",
]


def runtime_dir() -> Path:
    """The runtime directory shared with the fault registry (created if needed)."""
    from chaosgenesys.faults.location import registry_dir

    found = registry_dir()
    found.mkdir(parents=True, exist_ok=True, mode=0o700)
    return found


def observers_dir() -> Path:
    """``<runtime dir>/browser``, the browser observers' folders (created if needed)."""
    path = runtime_dir() / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


def agents_dir() -> Path:
    """``<runtime dir>/agents``."""
    path = runtime_dir() / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and ``os.replace``. One line, by the C
    encoder (an indent would make ``json`` use its pure-Python encoder: 5x slower on an agents'
    status file of megabytes); ``jq . file`` shows it indented."""
    write_text_atomic(path, json.dumps(data, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def list_runs() -> list[dict[str, Any]]:
    """Every recorded run (``run.json`` plus ``dir``), newest first."""
    runs: list[dict[str, Any]] = []
    try:
        folders = list(agents_dir().iterdir())
    except OSError:
        return []
    for folder in folders:
        record = read_json(folder / "run.json")
        if record is not None:
            record["dir"] = str(folder)
            runs.append(record)
    runs.sort(key=lambda r: float(r.get("created_at") or 0), reverse=True)
    return runs
