"""Browser observer tests: a private runtime directory per test, real headless Chromium, the test
page of ``tests.browser.pages``; after each test no observer, no launched browser and no guardian
of that directory is left."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.faults.registry import ENV_DIR
from tests import polling
from tests.faults.conftest import stop_guardians


def wait_for(condition: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    """:func:`tests.polling.wait_for_value` every 50 ms (the observer's files and the page)."""
    return polling.wait_for_value(condition, timeout, step)


def processes_with(word: str) -> list[int]:
    """Pids of running (not zombie) processes with ``word`` in their command line."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if word.encode() in argv and state != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``CHAOSGENESYS_RUNTIME_DIR``; after the test, this run's observers reverted and
    nothing of the directory left running."""
    directory = tmp_path / "runtime"
    monkeypatch.setenv(ENV_DIR, str(directory))
    try:
        yield directory
    finally:
        from chaosgenesys.faults import registry

        registry.revert_all(kind="browser-observer", scope="all")
        stop_guardians(directory)
        deadline = time.monotonic() + 5  # one that ended by itself may still be exiting
        while (left := processes_with(str(directory))) and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = [Path(f"/proc/{pid}/cmdline").read_bytes()[:200] for pid in left]
        assert not left, f"processes of the test left running: {shown}"


@contextmanager
def page_in(devtools_url: str, pattern: str) -> Iterator[Any]:
    """The test's own Playwright page for ``pattern`` in the browser at ``devtools_url``: the
    test drives the page as a user would, through a client that is not the observer's."""
    import re

    from playwright.sync_api import sync_playwright

    from chaosgenesys.browser import devtools

    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(devtools.websocket_url(devtools_url))
        try:
            compiled = re.compile(pattern)
            yield wait_for(
                lambda: next(
                    (p for c in browser.contexts for p in c.pages if compiled.search(p.url)), None
                ),
                10,
            )
        finally:
            browser.close()
