"""The agents' JSONL event log: one JSON object per line, flushed as it is written.

Every line has ``ts`` (epoch seconds), ``time`` (ISO 8601 UTC), ``user`` and ``event``, plus the
event's fields. Events: ``start``, ``token`` (``refresh``: proactive, 401 or first; ``ms``),
``token_error``, ``channel`` (created), ``connect``, ``disconnect`` (``reason``, ``code``),
``reconnect`` (``latency_ms``, ``attempts``, ``kind``), ``zombie`` (``silence_s``),
``presence`` / ``routing`` (``from``, ``to``, ``source``), ``local_discarded``,
``consistency_violation``, ``call_alerting``, ``call_answered``, ``call_ended``,
``wrapup_started``, ``wrapup_submitted``, ``interaction_lost``, ``logged_out``, ``stop``.
No token or secret is ever written.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

__all__ = ["EventLog"]


class EventLog:
    """Append events to a JSONL file (or nowhere when ``path`` is ``None``); thread-safe."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        #: Called with ``(user, event, fields)`` for every event, file or not (the agent
        #: process's Prometheus metrics, ``chaosgenesys.agent.metrics``).
        self.listener: Callable[[str, str, dict[str, Any]], None] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, user: str, event: str, **fields: Any) -> None:
        """Write one event line."""
        if self.listener is not None:
            self.listener(user, event, fields)
        if self._file is None:
            return
        now = time.time()
        record = {
            "ts": round(now, 3),
            "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")[:-6]
            + "Z",
            "user": user,
            "event": event,
            **fields,
        }
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        """Close the file; later writes are dropped."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
