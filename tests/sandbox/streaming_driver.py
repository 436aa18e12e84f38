"""Run ``tests/js/streaming_session.cjs`` (the official ``genesys-cloud-streaming-client`` in
Node, one long-lived session) and wait for the events it prints.

Every event carries ``t``, the CLOCK_MONOTONIC time in seconds at which the client saw it: the
same clock as :func:`time.monotonic`, so a test compares the moment it injected a fault with the
moments the client reacted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.sandbox.sandbox_helpers import CLIENT_ID
from tests.sandbox.streaming_helpers import REDIRECT

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "streaming_session.cjs"

Event = dict[str, Any]


def node() -> str:
    """``node`` with the official client installed (``./scripts/bootstrap``); fails, never skips."""
    path = shutil.which("node")
    assert path is not None, "node is missing: run ./scripts/bootstrap"
    package = ROOT / "node_modules" / "genesys-cloud-streaming-client" / "package.json"
    assert package.exists(), "genesys-cloud-streaming-client is missing: run ./scripts/bootstrap"
    return path


class StreamingSession:
    """One official streaming client, connected to ``url`` (the sandbox or a proxy before it)
    as ``user`` (id or email). Use as a context manager: it is started and connected on entry,
    stopped (stdin closed, then killed if it lingers) on exit."""

    def __init__(self, url: str, user: str, client_id: str = CLIENT_ID,
                 redirect_uri: str = REDIRECT) -> None:
        self.argv = [node(), str(SCRIPT), url, user, client_id, redirect_uri]
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self.stderr = ""

    # ------------------------------------------------------------------ process

    def start(self, timeout: float = 20.0) -> Event:
        """Start the client; its first ``connected`` event."""
        env = {k: v for k, v in os.environ.items() if k != "STREAMING_CLIENT_DEBUG"}
        self._process = subprocess.Popen(
            self.argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self.wait_for("connected", timeout=timeout)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "noise", "line": line, "t": time.monotonic()}
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        with self._changed:
            self.events.append({"event": "eof", "t": time.monotonic()})
            self._changed.notify_all()

    def send(self, command: dict[str, Any]) -> None:
        """One command on the script's stdin (``subscribe``, ``disconnect``)."""
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(command) + "\n")
        self._process.stdin.flush()

    def stop(self) -> int:
        """Close stdin (the script disconnects the client and exits 0); its exit code."""
        process = self._process
        if process is None:
            return 0
        try:
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()
            code = process.wait(timeout=10)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            process.kill()
            code = process.wait(timeout=10)
        if process.stderr is not None:
            self.stderr = process.stderr.read()[-4000:]
        return code

    def __enter__(self) -> StreamingSession:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        code = self.stop()
        if kind is not None or code != 0:
            print("streaming client events:")
            for event in self.events:
                print(json.dumps(event)[:400])
            print(self.stderr)

    # ------------------------------------------------------------------ events

    def mark(self) -> int:
        """An index into :attr:`events`: ``wait_for(..., since=mark)`` looks only after it."""
        with self._changed:
            return len(self.events)

    def select(self, name: str, since: int = 0,
               where: Callable[[Event], bool] | None = None) -> list[Event]:
        """The events called ``name`` (after ``since``) that ``where`` accepts."""
        with self._changed:
            return [e for e in self.events[since:]
                    if e.get("event") == name and (where is None or where(e))]

    def wait_for(self, name: str, since: int = 0, timeout: float = 20.0,
                 where: Callable[[Event], bool] | None = None) -> Event:
        """The first event called ``name`` after index ``since`` that ``where`` accepts; fails
        after ``timeout`` s, or at once if the script ended or reported an error."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events[since:]:
                    if event.get("event") == name and (where is None or where(event)):
                        return event
                    if event.get("event") in ("error", "eof") and name not in ("error", "eof"):
                        raise AssertionError(f"the streaming client stopped: {event}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {name!r} event within {timeout} s; events: "
                        f"{[e.get('event') for e in self.events[since:]]}"
                    )
                self._changed.wait(left)

    def quiet_for(self, seconds: float, since: int, names: tuple[str, ...]) -> list[Event]:
        """Wait ``seconds``; the events among ``names`` that came after ``since`` meanwhile."""
        time.sleep(seconds)
        with self._changed:
            return [e for e in self.events[since:] if e.get("event") in names]
