"""Reach a browser's DevTools endpoint and the desktop's page in it, with Playwright over CDP.

The one place that turns what an experiment names (``devtools_url``, ``page_url_pattern``) into a
DevTools WebSocket URL and a page pattern (the observer and the browser faults both check theirs
here), and, for the observer, into a connected browser and a page (the faults reach theirs over
:mod:`chaosgenesys.browser.cdp_pages`, without Playwright)::

    from chaosgenesys.browser import devtools

    with devtools.connected("http://127.0.0.1:9222") as browser:
        page = devtools.find_page(browser, r"/desktop/")

``devtools_url`` is the browser's DevTools HTTP endpoint (``http://127.0.0.1:9222``, what
``--remote-debugging-port=9222`` opens) or its WebSocket URL (``ws://…/devtools/browser/<id>``,
which Chromium prints on start). Anything else, or an endpoint that does not answer as DevTools
does, is an ``ActivityFailed`` naming the argument and its value; so is a pattern no page matches.
Page URLs are shown without their query and fragment (a login redirect carries a token there).
Playwright is imported here only, when a browser is really reached.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.redaction import shown_url

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, Page

__all__ = ["connected", "find_page", "no_page", "page_pattern", "shown_url", "websocket_url"]


def _version(http_url: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(http_url.rstrip("/") + "/json/version", timeout=timeout) as answer:
        data = json.loads(answer.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("/json/version is not a JSON object")
    return data


def websocket_url(devtools_url: str, argument: str = "devtools_url", timeout: float = 5.0) -> str:
    """The browser's DevTools WebSocket URL for ``devtools_url`` (HTTP endpoint or ws URL)."""
    if not isinstance(devtools_url, str) or not devtools_url.strip():
        raise ActivityFailed(
            f"{argument} must be a DevTools endpoint such as http://127.0.0.1:9222, "
            f"got {devtools_url!r}"
        )
    url = devtools_url.strip()
    scheme = urlsplit(url).scheme
    if scheme in ("ws", "wss"):
        http = urlunsplit(("http" if scheme == "ws" else "https", urlsplit(url).netloc, "", "", ""))
    elif scheme in ("http", "https"):
        http = url
    else:
        raise ActivityFailed(
            f"{argument} must start with http://, https://, ws:// or wss://, got {url!r}"
        )
    try:
        version = _version(http, timeout)
    except (OSError, ValueError, urllib.error.URLError) as error:
        raise ActivityFailed(
            f"{argument} {url!r} is not a DevTools endpoint ({error}); start the browser with "
            "--remote-debugging-port=9222 and pass http://127.0.0.1:9222"
        ) from None
    found = version.get("webSocketDebuggerUrl")
    if not isinstance(found, str) or not found.startswith(("ws://", "wss://")):
        raise ActivityFailed(f"{argument} {url!r} is not a DevTools endpoint (no browser URL)")
    return url if scheme in ("ws", "wss") else found


@contextmanager
def connected(devtools_url: str, argument: str = "devtools_url") -> Iterator[Browser]:
    """Playwright's ``Browser`` over CDP for the ``with`` block; disconnects after (the browser
    itself keeps running: it is the user's)."""
    ws_url = websocket_url(devtools_url, argument)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.connect_over_cdp(ws_url, timeout=15_000)
        except Error as error:
            raise ActivityFailed(
                f"{argument} {devtools_url!r}: could not attach over DevTools: "
                f"{str(error).splitlines()[0]}"
            ) from None
        try:
            yield browser
        finally:
            browser.close()


def page_pattern(pattern: str, argument: str = "page_url_pattern") -> re.Pattern[str]:
    """``pattern`` compiled, or an ``ActivityFailed`` naming the argument."""
    if not isinstance(pattern, str) or not pattern:
        raise ActivityFailed(f"{argument} must be a regular expression, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ActivityFailed(
            f"{argument} {pattern!r} is not a regular expression: {error}"
        ) from None


def find_page(
    browser: Browser, pattern: str, timeout: float = 10.0, argument: str = "page_url_pattern"
) -> Page:
    """The first page of ``browser`` whose URL ``pattern`` searches, waiting up to ``timeout``."""
    compiled = page_pattern(pattern, argument)
    deadline = time.monotonic() + timeout
    while True:
        pages = [page for context in browser.contexts for page in context.pages]
        for page in pages:
            if compiled.search(page.url):
                return page
        if time.monotonic() >= deadline:
            raise ActivityFailed(no_page(argument, pattern, timeout, [p.url for p in pages]))
        time.sleep(0.1)


def no_page(argument: str, pattern: str, timeout: float, urls: list[str]) -> str:
    """What to say when ``pattern`` matched none of the pages at ``urls`` within ``timeout``."""
    seen = ", ".join(sorted({shown_url(url) for url in urls})) or "none"
    return (
        f"{argument} {pattern!r} matches no page of the browser after {timeout:g} s "
        f"(pages: {seen})"
    )
