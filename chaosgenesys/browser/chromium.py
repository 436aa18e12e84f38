"""The Chromium an observer launches when it is given no browser to attach to: which binary,
its flags, and a headless instance in a session of its own (its profile removed when it stops).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading

from chaosgenesys.browser.runs import start_time
from chaosgenesys.failure import activity_failed

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "ENV_CHROMIUM",
    "LaunchedBrowser",
    "chromium_path",
    "die_with_parent",
]

ENV_CHROMIUM = "CHAOSGENESYS_CHROMIUM"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


def chromium_path() -> str:
    """The Chromium to launch: ``CHAOSGENESYS_CHROMIUM``, else ``/usr/bin/chromium``."""
    return os.environ.get(ENV_CHROMIUM, "").strip() or CHROMIUM


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """``preexec_fn`` for a child that must not outlive the thread that starts it (Linux's
    ``PR_SET_PDEATHSIG``: SIGKILL when that thread ends; start it from a long-lived thread)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LaunchedBrowser:
    """A headless Chromium the observer started, in a session of its own."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="chaosgenesys-observer-")
        self.process = subprocess.Popen(
            [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.pid = self.process.pid
        self.start_time = start_time(self.pid)
        self.ws_url = ""
        stderr = self.process.stderr
        assert stderr is not None
        found = threading.Event()

        def drain() -> None:
            for raw in stderr:
                if not self.ws_url:
                    match = re.search(rb"DevTools listening on (ws://\S+)", raw)
                    if match:
                        self.ws_url = match.group(1).decode("ascii", "replace")
                        found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        found.wait(timeout)
        if not self.ws_url:
            self.stop()
            raise activity_failed(
                f"open_url: the browser {chromium_path()!r} did not open its DevTools port "
                f"(set {ENV_CHROMIUM} to a Chromium, Chrome or Edge binary)"
            )

    def stop(self) -> None:
        """Stop the browser and its helpers; remove its profile."""
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)
