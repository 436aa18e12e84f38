"""Start the system's headless Chromium with a DevTools port, for Playwright's connect_over_cdp.

Reusable by any browser test: ``with chromium() as ws_url: browser =
playwright.chromium.connect_over_cdp(ws_url)``. A missing /usr/bin/chromium is
a failure telling you to run scripts/bootstrap (never a skip, never a download).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

# One launcher, one set of flags: the observer's.
from chaosgenesys.browser.observer import CHROMIUM, die_with_parent
from chaosgenesys.browser.observer import CHROMIUM_FLAGS as FLAGS


@contextmanager
def chromium(timeout: float = 30.0) -> Iterator[str]:
    """Run Chromium on a fresh profile; yield its DevTools WebSocket URL; stop it after."""
    if shutil.which(CHROMIUM) is None:
        raise AssertionError(f"{CHROMIUM} not found: run scripts/bootstrap")
    profile = tempfile.mkdtemp(prefix="chaosgenesys-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # a test run killed outright (SIGKILL, a CI timeout) takes its browser with it
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + timeout
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            url = found.group(1) if found else None
        if url is None:
            raise AssertionError("Chromium did not print its DevTools URL")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
