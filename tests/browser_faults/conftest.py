"""One headless Chromium and one test site per module of browser-fault tests; for each test a
fresh page, a private fault registry, and no guardian or fault holder left behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.faults import registry
from chaosgenesys.faults.registry import ENV_DIR
from tests.browser.chromium import chromium
from tests.browser.pages import PageSite, serve_test_page
from tests.faults.conftest import guardians, stop_guardians
from tests.polling import wait_for as wait_for


@dataclass
class Browser:
    """The running Chromium (its DevTools URLs) and the test site."""

    ws_url: str
    http_url: str
    site: PageSite
    playwright_browser: Any


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: a sync Playwright left running in the main thread would
    make every later ``sync_playwright()`` of the test run fail (tests/browser's)."""
    from playwright.sync_api import sync_playwright

    with serve_test_page() as site, chromium() as ws_url:
        playwright = sync_playwright().start()
        try:
            connected = playwright.chromium.connect_over_cdp(ws_url)
            yield Browser(ws_url, "http://" + ws_url.split("/")[2], site, connected)
        finally:
            playwright.stop()


@dataclass
class OpenPage:
    """A page of the test site opened for one test, and how to name it to an activity."""

    page: Any
    pattern: str
    browser: Browser

    @property
    def site(self) -> PageSite:
        return self.browser.site

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.page.evaluate(f"window.__events.slice({since})"))

    def count(self) -> int:
        return int(self.page.evaluate("window.__events.length"))

    def timed_call(self, path: str) -> tuple[Any, float]:
        """(status or error text, milliseconds) of ``callApi(path)`` measured in the page."""
        result = self.page.evaluate(
            """async (path) => {
                const start = performance.now();
                let status;
                try { status = await window.callApi(path); } catch (e) { status = String(e); }
                return [status, performance.now() - start];
            }""",
            path,
        )
        return result[0], float(result[1])

    def target(self) -> dict[str, str]:
        """The devtools_url / page_url_pattern arguments naming this page."""
        return {"devtools_url": self.browser.http_url, "page_url_pattern": self.pattern}


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh registry directory; after the test no fault of it, no holder, no guardian."""
    directory = tmp_path / "registry"
    monkeypatch.setenv(ENV_DIR, str(directory))
    try:
        yield directory
    finally:
        left = registry.active()
        for fault in left:
            registry.revert(fault.id)
        stop_guardians(directory)
        assert not guardians(directory)
        assert not left, f"faults left recorded: {[f.id for f in left]}"


@contextlib.contextmanager
def opened_page(browser: Browser, query: str = "", sockets: int = 1) -> Iterator[OpenPage]:
    """A new page of the test site (``query``: more of its URL's query, e.g. ``&captured``)
    once ``sockets`` more WebSockets are open to the site; closed after, its sockets gone."""
    marker = uuid.uuid4().hex[:12]
    page = browser.playwright_browser.contexts[0].new_page()
    before = browser.site.connections
    page.goto(f"{browser.site.url}/?case={marker}{query}")
    wait_for(lambda: browser.site.connections >= before + sockets, 10)
    try:
        yield OpenPage(page, rf"case={marker}", browser)
    finally:
        page.close()
        wait_for(lambda: browser.site.connections <= before, 10)


def worker_events(page: Any) -> list[dict[str, Any]]:
    """What the test page's worker (dedicated, service or shared) told it, without times."""
    return [{k: v for k, v in e.items() if k != "t"} for e in page.evaluate("__workerEvents")]


@pytest.fixture
def test_page(browser: Browser, runtime_dir: Path) -> Iterator[OpenPage]:
    """A new page of the test site, connected (one WebSocket open, its first frame in)."""
    with opened_page(browser) as opened:
        wait_for(lambda: any(e["event"] == "first_frame" for e in opened.events()), 10)
        yield opened


def holder_running(pid: int) -> bool:
    """Whether the fault holder ``pid`` still runs (not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    if state == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
