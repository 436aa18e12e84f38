"""This run's browser observers, read as they write, for the kill switch. Pure Python.

:class:`BrowserFeed` keeps a read offset per observer's ``events.jsonl`` and, at each
:meth:`BrowserFeed.poll`, reads only the lines written since: the REST calls the desktop's page
made (time, latency) and, per observer, whether the page's WebSocket is *in error*: it has had
a frame once (ready) and, since the previous poll, a socket of the page closed or failed
(``ws_closed``, ``ws_frame_error``), or no frame has come in since its last close (still down).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BrowserFeed", "PageState"]


@dataclass
class PageState:
    """What the feed knows of one observed page."""

    offset: int = 0
    ready: bool = False
    down: bool = False
    dropped: bool = False


@dataclass
class BrowserFeed:
    """Incremental reader of this run's observers' event logs."""

    pages: dict[str, PageState] = field(default_factory=dict)

    def poll(self) -> dict[str, Any]:
        """``{"calls": [(ts, latency_ms), ...] new since the last poll, "pages": {observer id:
        {"ready", "in_error"}}}`` for the observers of this run."""
        from chaosgenesys.browser.runs import run_observers

        calls: list[tuple[float, float]] = []
        pages: dict[str, dict[str, bool]] = {}
        for record in run_observers():
            observer_id = str(record.get("id", ""))
            state = self.pages.setdefault(observer_id, PageState())
            state.dropped = False
            self._read(Path(str(record.get("dir", ""))) / "events.jsonl", state, calls)
            pages[observer_id] = {
                "ready": state.ready,
                "in_error": state.ready and (state.down or state.dropped),
            }
        return {"calls": calls, "pages": pages}

    @staticmethod
    def _read(path: Path, state: PageState, calls: list[tuple[float, float]]) -> None:
        try:
            with path.open("rb") as log:
                log.seek(state.offset)
                data = log.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        state.offset += end
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "ws_frame" and event.get("dir") == "in":
                state.ready, state.down = True, False
            elif kind in ("ws_closed", "ws_frame_error"):
                state.dropped = True
                state.down = True
            elif kind == "rest":
                latency = event.get("latency_ms")
                if isinstance(latency, int | float) and not isinstance(latency, bool):
                    calls.append((float(event.get("ts", 0.0)), float(latency)))
