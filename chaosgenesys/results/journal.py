"""Reading a Chaos Toolkit journal: what a run did, for the verdict and the report.

:func:`load_journal` refuses, with a message saying why, a file that is not a Chaos Toolkit
journal (not JSON, not an object, no ``experiment``/``status``/``run``). The accessors
tolerate journals of runs that stopped early (no steady state after, no rollbacks) and of
experiments that use no chaosgenesys control (no extensions).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "JournalError",
    "activity_key",
    "extension",
    "load_journal",
    "parse_time",
    "runs",
]

_REQUIRED = ("experiment", "status", "run")


class JournalError(ValueError):
    """The file is not a Chaos Toolkit journal; the message says why."""


def load_journal(path: str | Path) -> dict[str, Any]:
    """The journal in ``path``; :class:`JournalError` naming the file and the problem."""
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as error:
        raise JournalError(f"{where}: cannot be read ({error.strerror or error})") from None
    try:
        data = json.loads(text)
    except ValueError as error:
        raise JournalError(f"{where}: not JSON ({error}); chaos run writes the journal with "
                           "--journal-path") from None
    if not isinstance(data, dict) or any(key not in data for key in _REQUIRED):
        raise JournalError(
            f"{where}: not a Chaos Toolkit journal (it has no "
            f"{', '.join(k for k in _REQUIRED if not isinstance(data, dict) or k not in data)}); "
            "is it the experiment file rather than the journal chaos run wrote?"
        )
    return data


def extension(journal: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The journal's ``experiment.extensions`` entry named ``name`` (the last one)."""
    found = None
    for entry in (journal.get("experiment") or {}).get("extensions") or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            found = entry
    return found


def runs(journal: dict[str, Any], part: str = "run") -> list[dict[str, Any]]:
    """The activity runs of the method (``run``) or of the ``rollbacks``, in order."""
    return [item for item in journal.get(part) or () if isinstance(item, dict)]


def activity_key(item: dict[str, Any]) -> str:
    """``module.func`` of a python activity run (``""`` for any other provider)."""
    provider = (item.get("activity") or {}).get("provider") or {}
    if provider.get("type") != "python":
        return ""
    return f"{provider.get('module')}.{provider.get('func')}"


def parse_time(value: Any) -> float | None:
    """A journal timestamp (ISO 8601) as epoch seconds; ``None`` when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
