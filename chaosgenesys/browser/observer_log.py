"""The browser observer's state and what it writes of it: ``events.jsonl`` (the agents'
:class:`~chaosgenesys.agent.eventlog.EventLog` format, CDP timestamps brought to wall-clock
time) and ``status.json`` (rewritten atomically).

The state of every part of the observer is set up here, since ``status.json`` reports from all
of it; :mod:`chaosgenesys.browser.page_recorder` and :mod:`chaosgenesys.browser.page_sessions`
add the behaviour.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.browser.runs import write_json_atomic

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.browser.cdp import Session
    from chaosgenesys.browser.cdp_link import Link

__all__ = ["ObserverLog"]


class ObserverLog:
    """The observer's state, and its writing to ``events.jsonl`` and ``status.json``."""

    def __init__(self, folder: Path, api_hosts: str, selectors: dict[str, str]) -> None:
        self.folder = folder
        self.log = EventLog(folder / "events.jsonl")
        self.api = re.compile(api_hosts) if api_hosts else None
        self.selectors = selectors
        self.link: Link | None = None
        self.page: Session | None = None  # the page's own session
        self.page_gone = False  # its target went away (closed)
        self.navigations = 0  # documents the page's main frame has committed
        self.loaded = False  # whether the last one's DOM is loaded
        self.label = "page"
        self.page_url = ""
        self.offset = time.time() - time.monotonic()  # wall - CDP monotonic, until calibrated
        self.calibrated = False
        self.sockets: dict[str, str] = {}  # ws id -> url, created but not yet written
        self.open_sockets: set[str] = set()
        self.seen_sockets: set[str] = set()
        self.refused_sockets: set[str] = set()  # handshakes block_websocket_handshakes refused
        self.token_responses: list[tuple[str, float, str, float]] = []  # /oauth/token answers
        #: Only in a browser the observer launched: (API base URL, token) of each token the page
        #: obtained, in memory only, revoked when the observer stops.
        self.keep_tokens = False
        self.session_tokens: list[tuple[str, str]] = []
        self.requests: dict[str, dict[str, Any]] = {}
        self.ui: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.frames_followed: set[str] = set()
        self.child_count = 0  # frames and workers followed (their request ids' prefixes)
        self.ended = ""
        self.status: dict[str, Any] = {"attached": False, "pid": os.getpid()}

    def require_link(self) -> Link:
        """The observer's connection to the browser (there is one once it attached)."""
        if self.link is None:
            raise RuntimeError("the observer is not attached to a browser")
        return self.link

    # -- writing -----------------------------------------------------------------------------

    def wall(self, timestamp: Any) -> float:
        """A CDP monotonic timestamp (seconds) as epoch seconds (now when there is none)."""
        if isinstance(timestamp, int | float) and timestamp > 0:
            moment = float(timestamp) + self.offset
            if abs(moment - time.time()) < 60:
                return moment
        return time.time()

    def calibrate(self, params: dict[str, Any]) -> None:
        wall, mono = params.get("wallTime"), params.get("timestamp")
        if isinstance(wall, int | float) and isinstance(mono, int | float) and wall > 0:
            self.offset = float(wall) - float(mono)
            self.calibrated = True

    def write(self, event: str, ts: float | None = None, **fields: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if ts is None:
            self.log.write(self.label, event, **fields)
            return
        stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
        self.log.write(self.label, event, ts=round(ts, 3), time=stamp, **fields)

    def write_status(self, **changes: Any) -> None:
        self.status.update(changes)
        self.status.update(
            updated_at=time.time(),
            page_url=self.page_url,
            ui=dict(self.ui),
            counts=dict(self.counts),
            open_websockets=len(self.open_sockets),
            frames_followed=len(self.frames_followed),
            ended=self.ended,
        )
        write_json_atomic(self.folder / "status.json", self.status)
